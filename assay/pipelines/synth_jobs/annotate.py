"""`assay synth annotate`: rubric scores as label columns on existing document shards, as a ShardJob.

    shards -> Documents -> batches -> one model per worker: P("0".."5") at the answer position
      -> OUT/docs/*.parquet with edu_score / knowledge_score (+ *_annotator) columns, OUT/rejected/ ledger
The classifiers train on these columns (`assay classify labels --score-column edu_score`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from assay.groundwork.config import to_dict
from assay.pipelines.job.runner import RunnerConfig
from assay.pipelines.job.shard_job import ShardJob
from assay.pipelines.job.sources import DocumentShards
from assay.pipelines.synth_jobs.steps import ScoreRubrics, usage_report
from assay.synth.config import BackendConfig
from assay.synth.rubric import RubricConfig


@dataclass
class AnnotateJobConfig:
    """What `assay synth annotate` scores, with which model and rubrics, and where the scored shards go."""

    shards: str  # the document shards to annotate (a curation output or a folder of Parquet shards)
    output: str  # the output folder: docs/ with the score columns, rejected/ (the ledger), run.json
    backend: BackendConfig  # the model that scores (assay/synth/backends/)
    rubric: RubricConfig = field(default_factory=RubricConfig)  # the rubrics to score and how
    cache_dir: str | None = None  # default: OUTPUT/cache
    #: one worker by default: each worker loads its own model
    runner: RunnerConfig = field(default_factory=lambda: RunnerConfig(workers=1))
    docs_per_shard: int = 20_000  # annotated documents per Parquet shard of docs/


def run_annotate(job: AnnotateJobConfig) -> dict:
    from assay.synth.backends import check_backend_config

    source = DocumentShards(job.shards)
    check_backend_config(job.backend)
    cache_dir = job.cache_dir or os.path.join(os.path.abspath(job.output), "cache")
    settings = {"shards": job.shards, "rubric": to_dict(job.rubric), "backend": to_dict(job.backend)}
    result = ShardJob("synth-annotate", source, [ScoreRubrics(job.backend, job.rubric, cache_dir)], job.output,
                      job.runner, settings=settings, docs_per_shard=job.docs_per_shard, report=usage_report).run(False)
    return {**result.counts, "usage": result.record["usage"]}
