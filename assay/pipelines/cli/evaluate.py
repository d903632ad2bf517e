"""`assay evaluate`: how well a curation config keeps the pages that teach, on a labelled corpus."""
from __future__ import annotations

from typing import Optional

import typer

from assay.pipelines.cli.options import WorkerOptions, fail, uses_options
from assay.pipelines.quality.metrics import EvalSettings

HELP = """Run a curation config on a labelled corpus and report what it keeps, per category.

The corpus is a folder of WARC files plus manifest.jsonl with a `category` per record (data/quality/eval/ is
the held-out one shipped with assay; data/sample/ works too). The report gives, per category, pages kept;
precision, recall and F1 of the kept set for the categories meant to be kept (--keep); every false drop by
stage and reason with example urls; and dedup recall per Jaccard bin of the labelled near-duplicate pairs.
Where pages carry a rubric rating (edu_score 0-5, durable; the real-web corpus, docs/quality.md), it also
reports precision and recall for score >= --min-score, keep rates per score, per rated category and per source.
Written to OUT/quality.md, OUT/quality.json and OUT/quality.png; the run itself is in OUT/run/.

Bounds make it a gate: the command exits 1 when one is not met (2 on bad input).

Examples:\n
  assay evaluate --corpus data/quality/eval --out reports/default\n
  assay evaluate my.toml --corpus data/quality/eval --out reports/my --min-recall 0.85 --min-precision 0.9 \\\n
      --max-kept spam=0.03 --max-kept nav=0.10 --max-kept ephemeral=0.15 --max-kept non_english=0\n
  assay evaluate --corpus data/quality/eval --run out/eval-run --out reports/again   # score a finished run\n
  assay evaluate --corpus ~/.cache/assay-realweb/eval --keep explainer --min-rubric-precision 0.7 \\\n
      --max-low-score-kept 0.05 --max-ephemeral-kept 0.10 --out reports/realweb
"""


def register(app: typer.Typer) -> None:
    @app.command("evaluate", help=HELP)
    @uses_options
    def evaluate_cmd(
        config: Optional[str] = typer.Argument(None, help="run config TOML (default: assay's default pipeline)"),
        corpus: str = typer.Option("data/quality/eval", "--corpus", "-c", help="labelled corpus folder"),
        out: str = typer.Option("out/quality", "--out", "-o", help="report folder"),
        run: Optional[str] = typer.Option(None, "--run",
                                          help="score this finished `assay run` output instead of running"),
        keep: list[str] = typer.Option(["edu"], "--keep", help="category the config means to keep (repeatable)"),
        merge_jaccard: float = typer.Option(EvalSettings.merge_jaccard,
                                           help="a page and its copies at or above this Jaccard count as one "
                                                "page for recall (the default dedup merges from about 0.7)"),
        min_recall: Optional[float] = typer.Option(None, help="fail below this recall of the --keep categories"),
        min_precision: Optional[float] = typer.Option(None, help="fail below this precision of the kept set"),
        min_f1: Optional[float] = typer.Option(None, help="fail below this F1"),
        max_kept: list[str] = typer.Option([], "--max-kept",
                                           help="CATEGORY=SHARE: fail when more is kept (repeatable)"),
        min_near_dup_recall: Optional[float] = typer.Option(None, help="fail when fewer near-duplicate pairs at "
                                                                       "Jaccard >= 0.8 are caught"),
        min_exact_dup_recall: Optional[float] = typer.Option(None,
                                                             help="fail when fewer exact-duplicate pairs are caught"),
        max_low_sim_merged: Optional[int] = typer.Option(
            None, help="fail when dedup merges more page pairs whose measured Jaccard is <= 0.3 (0: never)"),
        min_score: int = typer.Option(EvalSettings.min_score,
                                      help="a rated page (rubric 0-5) counts as teaching at or above this score"),
        min_rubric_precision: Optional[float] = typer.Option(
            None, help="fail when fewer kept rated pages score >= --min-score"),
        min_rubric_recall: Optional[float] = typer.Option(
            None, help="fail when fewer rated pages scoring >= --min-score are kept"),
        max_low_score_kept: Optional[float] = typer.Option(None, help="fail when more pages rated 0-1 are kept"),
        max_ephemeral_kept: Optional[float] = typer.Option(None, help="fail when more pages rated ephemeral are kept"),
        progress: bool = typer.Option(False, help="live progress of the curation run"),
        run_on: WorkerOptions = WorkerOptions(),
    ) -> None:
        from rich.console import Console

        from assay.groundwork.config import ConfigError
        from assay.pipelines.curate.config import load_curate_config
        from assay.pipelines.quality.gates import Gates, parse_max_kept
        from assay.pipelines.quality.report import to_markdown
        from assay.pipelines.quality.run import evaluate

        console = Console(width=None if Console().is_terminal else 130)
        try:
            cfg = load_curate_config(config)
            gates = Gates(min_recall, min_precision, min_f1, parse_max_kept(max_kept), min_near_dup_recall,
                          min_exact_dup_recall, max_low_sim_merged, min_rubric_precision, min_rubric_recall,
                          max_low_score_kept, max_ephemeral_kept)
            cfg.runner = run_on.runner(cfg.runner)
            if not 0 <= min_score <= 5:
                raise ValueError(f"--min-score {min_score}: the rubric scores 0-5")
            settings = EvalSettings(keep=tuple(keep), merge_jaccard=merge_jaccard, min_score=min_score)
            result = evaluate(cfg, corpus, out, settings, gates, run_dir=run, show_progress=progress)
        except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as exc:
            fail(str(exc))
        console.print(to_markdown(result.report, result.failures), markup=False, highlight=False)
        console.print(f"report: {result.paths['quality.md']}  ·  json: {result.paths['quality.json']}  ·  "
                      f"plot: {result.paths['quality.png']}  ·  run: {result.run_dir}")
        if result.failures:
            raise typer.Exit(1)
