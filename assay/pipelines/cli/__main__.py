"""`python -m assay.pipelines.cli ...` (e.g. under torchrun) runs the `assay` command line."""
from assay.pipelines.cli import main

main()
