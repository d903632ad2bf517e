from setuptools import setup

# Metadata lives in pyproject.toml; this shim lets Beam ship assay to remote workers (--setup_file).
setup()
