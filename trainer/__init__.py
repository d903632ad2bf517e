"""assay.trainer"""
