"""assay.curation"""
