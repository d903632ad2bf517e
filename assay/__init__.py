"""assay: data-optimal corpus curation with an attached trainer (docs/architecture.md).

Every module lives under this one import name, so assay installs beside any other library.
"""
