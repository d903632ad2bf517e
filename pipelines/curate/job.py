"""The phase-1 web curation job of `assay run`: read -> extract -> langid -> filters -> PII -> dedup ->
classifiers -> shards, as a ShardJob declared by a CurateConfig."""
from __future__ import annotations

from groundwork.config import to_dict
from pipelines.curate.config import CurateConfig
from pipelines.job.shard_job import JobResult, ShardJob
from pipelines.job.sources import InputFiles


def curation_job(cfg: CurateConfig, output: str | None = None) -> ShardJob:
    return ShardJob("curate", InputFiles(cfg.input.paths, cfg.input.reader), cfg.steps(), output or cfg.output.path,
                    cfg.runner, settings=to_dict(cfg), docs_per_shard=cfg.output.docs_per_shard,
                    ledger_per_shard=cfg.output.ledger_per_shard, histograms=cfg.output.histograms)


def run_curation(cfg: CurateConfig, output: str | None = None, show_progress: bool | None = None) -> JobResult:
    """Run the pipeline to completion and publish its output; the result holds the funnel."""
    return curation_job(cfg, output).run(show_progress)
