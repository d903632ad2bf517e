"""What every floor of assay stands on: config files read into dataclasses with one error type, and files and
folders that appear only when complete.

The basement of the house: it imports nothing from assay, so assay/kernels/, assay/curation/, assay/classifiers/,
assay/synth/, assay/trainer/
and assay/pipelines/ can all use it (docs/architecture.md).
"""
