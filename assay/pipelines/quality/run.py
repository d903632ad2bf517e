"""Run a curation config on a labelled corpus (or take a finished run) and score it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from assay.pipelines.curate.config import CurateConfig
from assay.pipelines.quality.corpus import load_corpus
from assay.pipelines.quality.gates import Gates, check
from assay.pipelines.quality.metrics import EvalSettings, QualityReport, score
from assay.pipelines.quality.outcome import read_merges, read_outcomes
from assay.pipelines.quality.report import write_report

RUN_SUBDIR = "run"


@dataclass
class Evaluation:
    report: QualityReport
    failures: list[str]
    paths: dict[str, str]
    run_dir: str


def evaluate(cfg: CurateConfig, corpus_dir: str, out_dir: str, settings: EvalSettings | None = None,
             gates: Gates | None = None, run_dir: str | None = None, show_progress: bool = False) -> Evaluation:
    """Curate `corpus_dir`'s WARC files with `cfg` into OUT/run (unless `run_dir` names a finished run of the
    same corpus), then write OUT/quality.{md,json,png}."""
    corpus = load_corpus(corpus_dir)
    if run_dir is None:
        from assay.pipelines.curate.job import run_curation

        cfg.input.paths = corpus.warc_files
        cfg.output.ledger_full_text = True  # the merges' Jaccard is measured on the dropped pages' text
        run_dir = os.path.join(os.path.abspath(out_dir), RUN_SUBDIR)
        run_curation(cfg, output=run_dir, show_progress=show_progress)
    report = score(corpus, read_outcomes(run_dir), settings or EvalSettings(), read_merges(run_dir))
    failures = check(report, gates or Gates())
    paths = write_report(report, out_dir, failures)
    return Evaluation(report, failures, paths, run_dir)
