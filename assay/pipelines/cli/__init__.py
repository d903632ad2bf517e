"""The `assay` command line: one typer app; each command family registers its commands from its own module.

Command modules import their heavy dependencies (Beam, torch, transformers) inside the command functions,
so `assay --help` stays fast. Shared options are dataclasses (assay/pipelines/cli/options.py); commands only turn
options into the job configs and call the job.
"""
from __future__ import annotations

import typer

from assay.pipelines.cli import ablate, classify, curate, evaluate, mix, synth, train

app = typer.Typer(
    name="assay",
    help=(
        "Data-optimal corpus curation for LM pretraining.\n\n"
        "Typical flow: `assay run` curates a crawl into Parquet shards (with a ledger of every drop), "
        "`assay sql` / `assay stats` inspect them, `assay evaluate` measures what a config keeps on labelled "
        "pages, `assay classify` trains and applies quality classifiers, `assay synth` generates synthetic "
        "data, `assay mix` turns pools into token shards, `assay train` / `assay eval` train and evaluate proxy "
        "models, `assay ablate` compares recipes."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for family in (curate, mix, classify, train, ablate, synth, evaluate):
    family.register(app)


@app.callback()
def _global(verbose: bool = typer.Option(False, "--verbose", "-v",
                                         help="show library INFO logs (Beam, datatrove)")) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        for noisy in ("apache_beam", "datatrove", "trafilatura", "urllib3", "absl"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # workers' start-up notes forwarded through the runner ("No semi_persistent_directory found")
        logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
        from assay.pipelines.job.beam_worker import quiet_handlers

        quiet_handlers(logging.WARNING)


def main() -> None:  # pragma: no cover
    app()
