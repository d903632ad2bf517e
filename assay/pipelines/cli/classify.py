"""`assay classify labels|train|eval|score`: build labels, train a classifier, evaluate it and pick its
threshold, and score shards with it in a Beam pipeline."""
from __future__ import annotations

import json
from typing import get_args

import typer

from assay.classifiers.config import POSITIVE_AT, ClassifierKind, SplitConfig, Task
from assay.classifiers.scoring import Mode
from assay.pipelines.cli.options import WorkerOptions, known_errors, uses_options

classify_app = typer.Typer(
    help=(
        "Train and apply quality classifiers (educational value, knowledge level).\n\n"
        "Flow: `assay classify labels` (labelled dataset from shards) -> `assay classify train` (fastText or "
        "encoder+head model dir) -> `assay classify eval` (held-out metrics, plots, threshold into the model's "
        "metadata) -> `assay classify score` (adds the score column to shards; or use the model as a stage "
        "of `assay run`). See docs/classifiers.md."
    ),
    no_args_is_help=True,
)


def _clear_errors():
    """Known failures become one line saying what to do, and exit status 2."""
    from assay.classifiers.artifact import ModelDirError

    return known_errors(ModelDirError, ValueError, FileNotFoundError, FileExistsError)


@classify_app.command("labels")
def labels(
    shards: str = typer.Option(..., help="an `assay run` output, its docs/ folder, or one Parquet shard"),
    out: str = typer.Option(..., help="folder for labels.parquet + labels.json"),
    score_column: str = typer.Option("edu_score", help="rubric labels: the 0-5 score column"),
    annotator_column: str = typer.Option(None, help="rubric labels: annotator column (default SCORE_annotator)"),
    positive: str = typer.Option(None, help="reference labels: SQL WHERE for positives, e.g. \"source = 'docs'\""),
    negative: str = typer.Option(None, help="reference labels: SQL WHERE for negatives (default: not positive)"),
    annotations: str = typer.Option(None,
                                    help="jsonl/parquet/csv with a url column, joined in for --positive/--negative"),
    group: str = typer.Option(None,
                              help="SQL expression to split by (e.g. a dedup cluster column) instead of content hash"),
    train: float = typer.Option(SplitConfig.train, help="fraction of groups in train"),
    valid: float = typer.Option(SplitConfig.valid, help="fraction of groups in valid (the rest is test)"),
) -> None:
    """Build a labelled dataset, split train/valid/test by content hash.

    Rubric:    assay classify labels --shards out/run --score-column edu_score --out labels/edu
    Reference: assay classify labels --shards out/run --annotations data/sample/manifest.jsonl
               --positive "category = 'doc'" --negative "category IN ('spam','index')" --out labels/ref
    """
    from assay.classifiers.labels import LabelSpec, build_labels

    with _clear_errors():
        spec = LabelSpec(kind="reference" if positive else "rubric", score_column=score_column,
                         annotator_column=annotator_column, positive_where=positive, negative_where=negative,
                         annotations=annotations, group_by=group)
        summary = build_labels(shards, spec, out, SplitConfig(train=train, valid=valid))
    typer.echo(f"{summary['labelled']} of {summary['documents']} documents labelled -> {out}")
    typer.echo(json.dumps(summary["counts"]))


@classify_app.command("train")
def train(
    labels: str = typer.Option(..., help="a folder written by `assay classify labels`"),
    out: str = typer.Option(..., help="model folder to write (replaced atomically)"),
    kind: str = typer.Option("fasttext", help=" | ".join(get_args(ClassifierKind))),
    task: str = typer.Option("binary", help=" | ".join(get_args(Task)) + " (regression: rubric scores 0-5)"),
    positive_at: float = typer.Option(POSITIVE_AT, help="rubric score counted as positive for binary tasks and eval"),
    epoch: int = typer.Option(None, help="fastText epochs"),
    dim: int = typer.Option(None, help="fastText vector size"),
    encoder_dir: str = typer.Option(None, help="encoder: a local sentence-transformers folder (default MiniLM)"),
    max_tokens: int = typer.Option(None, help="encoder: truncation in tokens"),
    batch_size: int = typer.Option(None, help="encoder: batch size"),
) -> None:
    """Train a classifier on the train split and write a model folder with metadata and content hash.

    Example: assay classify train --labels labels/ref --kind fasttext --out models/ref-ft
    """
    from assay.classifiers.config import ClassifierTrainConfig as TrainConfig
    from assay.classifiers.config import EncoderConfig, FastTextConfig
    from assay.classifiers.train import train as run_train

    with _clear_errors():
        ft, enc = FastTextConfig(), EncoderConfig(encoder_dir=encoder_dir)
        ft.epoch = epoch or ft.epoch
        ft.dim = dim or ft.dim
        enc.max_tokens = max_tokens or enc.max_tokens
        enc.batch_size = batch_size or enc.batch_size
        _, meta = run_train(labels, TrainConfig(kind=kind, task=task, positive_at=positive_at, fasttext=ft,
                                             encoder=enc), out)
    typer.echo(f"trained {meta['kind']} ({meta['task']}) on {meta['label_source']['train_rows']} rows -> {out}; "
               f"next: assay classify eval --model {out} --labels {labels}")


@classify_app.command("eval")
def evaluate(
    model: str = typer.Option(..., help="a model folder from `assay classify train`"),
    labels: str = typer.Option(..., help="the label folder it was trained from"),
    split: str = typer.Option("test", help="split to report on"),
    policy: str = typer.Option("best_f1", help="threshold policy: best_f1, precision:P (e.g. precision:0.9) or "
                                               "recall:R (highest threshold keeping recall R, e.g. recall:0.97)"),
    report: str = typer.Option(None, help="folder for metrics.json, pr_curve.png, score_histogram.png"),
) -> None:
    """Held-out metrics (ROC-AUC, P/R/F1 per threshold, Spearman, confusion, per source/domain); the policy's
    threshold (chosen on valid) is written into the model's metadata.

    Example: assay classify eval --model models/ref-ft --labels labels/ref --policy precision:0.95 --report
    reports/ref-ft
    """
    from assay.classifiers.config import ThresholdPolicy
    from assay.classifiers.evaluate import evaluate as run_eval
    from assay.classifiers.evaluate import format_table

    with _clear_errors():
        result = run_eval(model, labels, ThresholdPolicy.parse(policy), split=split, report_dir=report)
    typer.echo(format_table(result))


@classify_app.command("score")
@uses_options
def score(
    model: str = typer.Option(..., help="a model folder (evaluated, or pass --threshold)"),
    shards: str = typer.Option(..., help="an `assay run` output or a folder of document shards"),
    out: str = typer.Option(..., help="output folder: docs/ with the new column, rejected/ ledger"),
    column: str = typer.Option(..., help="name of the score column, e.g. edu_cls"),
    threshold: float = typer.Option(None, help="drop below this (default: the model's metadata threshold)"),
    mode: str = typer.Option("drop", help=" | ".join(get_args(Mode)) + " (annotate: keep all, only add the column)"),
    run: WorkerOptions = WorkerOptions(),
) -> None:
    """Score shards with RunInference; below-threshold documents go to the ledger with their score.

    Example: assay classify score --model models/ref-ft --shards out/run --out out/scored --column ref_cls
    """
    from assay.classifiers.scoring import ClassifierStageConfig
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.score_shards import ScoreJobConfig, run_scoring

    with _clear_errors():
        counts = run_scoring(ScoreJobConfig(shards, out, ClassifierStageConfig(model, column, threshold, mode),
                                            runner=run.runner(RunnerConfig())))
    typer.echo(f"kept {counts['kept']}, rejected {counts['rejected']} -> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(classify_app, name="classify")
