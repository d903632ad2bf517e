"""`assay run`, `assay sql`, `assay stats`: curate a crawl and look at what came out."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Optional

import typer

from assay.pipelines.cli.options import fail, known_errors, option, uses_options
from assay.pipelines.curate.config import stages_overview

RUN_HELP = """Curate a crawl into Parquet shards, with a ledger of every dropped document and why.

With no CONFIG it runs on the embedded sample corpus (data/sample/) with the default stages (a config's
`stages` list picks and orders them): {stages}. Output: DIR/docs/*.parquet (kept, one column per signal),
DIR/rejected/*.parquet (the ledger: id, url, stage, reason, signals and an excerpt of the text;
--ledger-full-text keeps the text), DIR/stats/ (funnel.json and histograms), DIR/run.json, DIR/README.md (the
dataset card); the output loads with `datasets.load_dataset("parquet", data_files="DIR/docs/*.parquet")`. A run
holds DIR's lock (a second run into DIR refuses), publishes in one step (readers see the whole previous output
or the whole new one), and a rerun after a kill reuses the input files the killed run finished. Inputs
may be Hugging Face `datasets` folders (save_to_disk) and Hub-style Parquet/JSONL; set input.reader.text_field and
input.reader.split (docs/readers.md).

Examples:\n
  assay run --output out/demo\n
  assay run my.toml --output out/crawl --workers 2\n
  assay run my.toml --input my_dataset/ --output out/hf   (a save_to_disk folder)\n
  assay run my.toml --runner dask --dask-address tcp://10.0.0.5:8786\n
  assay run my.toml --runner DataflowRunner --project P --region europe-west1 --temp_location gs://B/tmp

Any option assay does not know is passed to Beam unchanged (see docs/curation.md for Dataflow/Flink/Spark).
""".format(stages=stages_overview())


@dataclass
class RunnerOptions:
    """Where `assay run` executes: the local runner, a Dask cluster, or any Beam runner by name."""

    runner: Optional[str] = option(None, "'local' (Beam FnApiRunner), 'dask' (Beam's DaskRunner) or a Beam runner name")
    workers: Optional[int] = option(None, "local worker processes (also the size of the local dask cluster started "
                                          "when --dask-address is not given)")
    dask_address: Optional[str] = option(None, "tcp://HOST:PORT of a dask.distributed scheduler (--runner dask; "
                                               "without it a local cluster is started)", "--dask-address")

    def apply(self, cfg, beam_args: list[str]) -> None:
        """Onto a RunnerConfig: these options, and Beam flags assay does not know, passed through."""
        cfg.runner = self.runner or ("dask" if self.dask_address else cfg.runner)
        cfg.workers = self.workers or cfg.workers
        cfg.beam_args = [*cfg.beam_args, *beam_args]
        if self.dask_address:
            cfg.beam_args.append(f"--dask_client_address={self.dask_address}")


def register(app: typer.Typer) -> None:
    @app.command("run", help=RUN_HELP,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    @uses_options
    def run(
        ctx: typer.Context,
        config: Optional[str] = typer.Argument(None, help="TOML config (see docs/curation.md); default: the sample"),
        output: Optional[str] = typer.Option(None, "--output", "-o",
                                             help="output folder (default: config's output.path)"),
        input: Optional[list[str]] = typer.Option(None, "--input", "-i", help="input file/folder/glob (repeatable)"),
        show_config: bool = typer.Option(False, "--show-config", help="print the resolved config and exit"),
        progress: bool = typer.Option(True, help="live progress (local runner)"),
        ledger_full_text: bool = typer.Option(
            False, "--ledger-full-text", help="keep each rejected page's text in the ledger (up to 200,000 "
                                              "characters; default: an excerpt, output.ledger_full_text)"),
        where: RunnerOptions = RunnerOptions(),
    ) -> None:
        from rich.console import Console

        from assay.groundwork.config import ConfigError, to_dict
        from assay.pipelines.curate.config import load_curate_config

        console = Console(width=None if Console().is_terminal else 130)
        extra = list(ctx.args)
        if config and config.startswith("--"):  # no CONFIG: the first word is a Beam flag, not a file
            extra, config = [config, *extra], None
        try:
            cfg = load_curate_config(config)
        except (ConfigError, ValueError) as exc:
            fail(f"config: {exc}")
        if input:
            cfg.input.paths = list(input)
        if output:
            cfg.output.path = output
        if ledger_full_text:
            cfg.output.ledger_full_text = True
        where.apply(cfg.runner, extra)
        if show_config:
            console.print_json(json.dumps(to_dict(cfg)))
            return
        from assay.curation.shards import OutputError
        from assay.pipelines.curate.job import run_curation
        from assay.pipelines.job.funnel import funnel_table
        from assay.pipelines.job.watchdog import WorkerLost

        try:
            result = run_curation(cfg, show_progress=progress)
        except (FileNotFoundError, FileExistsError, ValueError, OutputError) as exc:
            fail(str(exc))
        except WorkerLost as exc:
            fail(f"run failed: {exc}", code=1)
        console.print(funnel_table(result.funnel))
        console.print(f"output: {result.output}  ({result.seconds:.1f}s)  ·  inspect with: "
                      f"assay sql \"SELECT stage, reason, count(*) FROM rejected GROUP BY ALL\" -o {result.output}")

    @app.command("sql")
    def sql(
        query: str = typer.Argument(..., help="DuckDB SQL over the views docs, rejected and stats"),
        output: str = typer.Option("out/run", "--output", "-o", help="an `assay run` output folder"),
        format: str = typer.Option("table", "--format", "-f", help="table | csv | json | parquet"),
        to: Optional[str] = typer.Option(None, "--to", help="file for --format parquet"),
        limit: int = typer.Option(50, help="rows shown by --format table"),
        verify: bool = typer.Option(True, help="check the shards against the checksums in run.json first "
                                               "(--no-verify skips it on a very large output)"),
    ) -> None:
        """Query a curation output with DuckDB.

        Views: docs (kept documents, one column per signal), rejected (the ledger: stage, reason, detail,
        signals JSON, text), stats (the funnel).

        Examples:\n
          assay sql "SELECT language, count(*) FROM docs GROUP BY ALL" -o out/demo\n
          assay sql "SELECT stage, reason, count(*) n FROM rejected GROUP BY ALL ORDER BY n DESC" -o out/demo\n
          assay sql "SELECT * FROM docs WHERE n_words > 500" -o out/demo -f parquet --to long.parquet
        """
        import csv

        import duckdb

        from assay.curation.shards import OutputError
        from assay.pipelines.job.sql import export_query, run_query

        try:
            if format == "parquet":
                if not to:
                    fail("--format parquet needs --to FILE")
                export_query(output, query, to, verify=verify)
                typer.echo(f"wrote {to}")
                return
            names, rows = run_query(output, query, verify=verify)
        except (FileNotFoundError, OutputError) as exc:
            fail(str(exc))
        except duckdb.Error as exc:
            fail(f"SQL error: {exc}\n(views: docs, rejected, stats; try: DESCRIBE docs)")
        if format == "csv":
            from assay.groundwork.terminal import printable

            show = printable if sys.stdout.isatty() else (lambda v: v)  # a file gets the values as they are
            writer = csv.writer(sys.stdout)
            writer.writerow([show(n) for n in names])
            writer.writerows([show(v) if isinstance(v, str) else v for v in row] for row in rows)
        elif format == "json":
            for row in rows:
                sys.stdout.write(json.dumps(dict(zip(names, row)), default=str) + "\n")
        elif format == "table":
            from rich.console import Console
            from rich.table import Table

            from assay.groundwork.terminal import plain_text

            table = Table()
            for name in names:
                table.add_column(plain_text(name))
            for row in rows[:limit]:  # cells are data: never markup, no control characters
                table.add_row(*[plain_text(v, limit=80) for v in row])
            if len(rows) > limit:
                table.caption = f"{len(rows) - limit} more rows (use --limit, or --format csv)"
            Console().print(table)
        else:
            fail(f"unknown --format {format!r}: use table, csv, json or parquet")

    @app.command("stats")
    def stats(output: str = typer.Argument("out/run", help="an `assay run` output folder"),
              json_out: bool = typer.Option(False, "--json", help="print the funnel as JSON"),
              verify: bool = typer.Option(True, help="check the shards against the checksums in run.json first "
                                                     "(--no-verify skips it on a very large output)")) -> None:
        """Show the per-stage funnel of a finished run (documents and bytes in/out, drop reasons)."""
        from rich.console import Console

        from assay.curation.shards import OutputError
        from assay.pipelines.job.funnel import funnel_table, load_funnel

        with known_errors(FileNotFoundError, OutputError):
            funnel = load_funnel(output, verify=verify)
        if json_out:
            typer.echo(json.dumps(funnel, indent=2))
        else:
            Console(width=None if Console().is_terminal else 130).print(funnel_table(funnel))

