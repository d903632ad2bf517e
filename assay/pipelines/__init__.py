"""assay.pipelines"""
