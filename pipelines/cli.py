"""The `assay` command line: one typer app; each area registers its commands below.

Command modules import their heavy dependencies (Beam, torch, transformers) inside the command
functions, so `assay --help` stays fast.
"""
from __future__ import annotations

import typer

app = typer.Typer(
    name="assay",
    help=(
        "Data-optimal corpus curation for LM pretraining.\n\n"
        "Typical flow: `assay run` curates a crawl into Parquet shards (with a ledger of every drop), "
        "`assay sql` / `assay stats` inspect them, `assay classify` trains and applies quality classifiers, "
        "`assay synth` generates synthetic data, `assay mix` turns pools into token shards, "
        "`assay train` / `assay eval` train and evaluate proxy models, `assay ablate` compares recipes."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# --- registration: one line per area -------------------------------------------------------------
from pipelines import cli_curate  # noqa: E402

cli_curate.register(app)
from pipelines import cli_mix  # noqa: E402

cli_mix.register(app)
from pipelines import cli_classify  # noqa: E402

cli_classify.register(app)
from pipelines import cli_train  # noqa: E402

cli_train.register(app)
from pipelines import cli_ablate  # noqa: E402

cli_ablate.register(app)
from pipelines import cli_synth  # noqa: E402

cli_synth.register(app)
from pipelines import cli_evaluate  # noqa: E402

cli_evaluate.register(app)
# (other areas add `from pipelines import cli_X` + `cli_X.register(app)` here)
# ---------------------------------------------------------------------------------------------------


@app.callback()
def _global(verbose: bool = typer.Option(False, "--verbose", "-v", help="show library INFO logs (Beam, datatrove)")) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        for noisy in ("apache_beam", "datatrove", "trafilatura", "urllib3", "absl"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # workers' start-up notes forwarded through the runner ("No semi_persistent_directory found")
        logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
        from pipelines.job.beam_worker import quiet_handlers

        quiet_handlers(logging.WARNING)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
