"""assay.classifiers"""
