"""`assay ablate PLAN` and `assay ablate-report DIR`: compare data recipes by training small proxy models."""
from __future__ import annotations

import typer

from assay.pipelines.cli.options import fail, known_errors

ABLATE_HELP = (
    "Compare data recipes by training proxy models: for each recipe x size x seed, mix the recipe's token "
    "shards (cached by recipe hash), train, evaluate on held-out documents shared by every recipe, then "
    "write report.md / report.json / PNG plots (mean and 95% CI over seeds, per-metric signal-to-noise and "
    "decisions with 95% Welch intervals, agreement across sizes, CPU-hours and FLOPs per decision, tokens/s per "
    "cell, loss curves, eval vs tokens, log-error vs log-params fits, lineage of every number).\n\n"
    "Eval sets: held-out documents of a pool source, or neutral reference text (`text = ...`) that no recipe's "
    "pool may hold (checked by content hash; the run refuses otherwise). `parallel_cells` trains cells in "
    "parallel processes.\n\n"
    "Rerunning skips finished cells and resumes interrupted ones. A recipe whose pools are missing (e.g. no "
    "edu_score column yet) is reported as unavailable; the others run.\n\n"
    "Example: `assay ablate plans/sample_demo.toml --dry-run`, then `assay ablate plans/sample_demo.toml`."
)
REPORT_HELP = (
    "Rebuild the report of an ablation folder from its finished cells (report.md, report.json, plots), for any "
    "plan: per metric and size the signal-to-noise ratio (std of recipe means / mean seed std), the best recipe "
    "and its difference to each other one with a 95% Welch interval (\"no decision\" where it covers 0), whether "
    "the sizes rank the recipes alike, and the CPU-hours and 6ND FLOPs each decision cost.\n\n"
    "Example: `assay ablate-report out/ablate/sample-demo`."
)


def register(app: typer.Typer) -> None:
    @app.command("ablate", help=ABLATE_HELP)
    def ablate(
        plan: str = typer.Argument(..., help="Plan TOML: recipes, sizes, seeds, token budgets, evals "
                                             "(see plans/sample_demo.toml)."),
        output: str = typer.Option(None, "--output", "-o", help="Ablation folder (default: the plan's `output`)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the cells, token budgets and estimated "
                                                              "compute; mix and train nothing."),
        no_report: bool = typer.Option(False, "--no-report", help="Run the cells but do not write the report."),
    ) -> None:
        """Run an ablation plan (help text: ABLATE_HELP)."""
        from rich.console import Console

        from assay.groundwork.config import ConfigError
        from assay.pipelines.ablate.plan import load_plan
        from assay.trainer.tokenizer import TokenizerError

        console = Console(stderr=True)
        try:
            cfg = load_plan(plan)
            out = output or cfg.output
            if dry_run:
                from assay.pipelines.ablate.dryrun import dry_run as plan_dry_run
                from assay.pipelines.ablate.dryrun import render

                table_console = Console()
                table_console.width = max(table_console.width, 140)
                render(cfg, plan_dry_run(cfg, out), table_console, out)
                return
            from assay.pipelines.ablate.runner import run_plan

            summary = run_plan(cfg, out, log=lambda m: console.print(m, markup=False, highlight=False))
        except (ConfigError, TokenizerError) as exc:
            fail(str(exc))
        console.print(f"cells: {len(summary.ran)} ran, {len(summary.skipped)} already finished, "
                      f"{len(summary.failed)} failed; {len(summary.unavailable)} recipe/size pairs unavailable")
        if not no_report and (summary.ran or summary.skipped):
            from assay.pipelines.ablate.report import build_report

            report = build_report(out)
            typer.echo(f"report: {report['output']}/report.md")
            for size, order in report["rankings"].items():
                steps = [("~ " if sep["cis_overlap"] else "> ") + sep["worse"] for sep in report["separation"][size]]
                typer.echo(f"  {size}: {' '.join(order[:1] + steps)}   ('>': 95% intervals apart, '~': overlapping)")
            _echo_decision(report)
        if summary.failed:
            raise typer.Exit(1)

    @app.command("ablate-report", help=REPORT_HELP)
    def ablate_report(folder: str = typer.Argument(..., help="An ablation output folder.")) -> None:
        """Rebuild an ablation report (help text: REPORT_HELP)."""
        from assay.pipelines.ablate.report import ReportError, build_report

        with known_errors(ReportError):
            report = build_report(folder)
        typer.echo(f"report: {report['output']}/report.md")
        _echo_decision(report)


def _echo_decision(report: dict) -> None:
    """The primary metric's decision per size, one line each."""
    primary = report["decisions"][0] if report.get("decisions") else None
    if not primary:
        return
    for size, d in primary["sizes"].items():
        parts = [f"{v['other']} {'decided' if v['decided'] else 'no decision'} "
                 f"[{v['low']:.4f}, {v['high']:.4f}]" for v in d["versus"]]
        typer.echo(f"  {primary['metric']} {size}: best {d['best']} (SNR {d['snr']:.2f}); vs " + "; ".join(parts)
                   + f" -> winner: {d['winner'] or 'no decision'}")
