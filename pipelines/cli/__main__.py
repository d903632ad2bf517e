"""`python -m pipelines.cli ...` (e.g. under torchrun) runs the `assay` command line."""
from pipelines.cli import main

main()
