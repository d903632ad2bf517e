"""`assay classify score`: a classifier's score column added to existing document shards, as a ShardJob.

    shards (Parquet) -> Documents -> classifier stage (RunInference) -> OUT/docs/*.parquet
                                                                     -> OUT/rejected/*.parquet (ledger)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from assay.classifiers.scoring import ClassifierStageConfig
from assay.groundwork.config import to_dict
from assay.pipelines.job.runner import RunnerConfig
from assay.pipelines.job.shard_job import ShardJob
from assay.pipelines.job.sources import DocumentShards
from assay.pipelines.job.steps import Classify


@dataclass
class ScoreJobConfig:
    """What `assay classify score` scores, with which classifier, and where the scored shards go."""

    shards: str  # the document shards to score (a curation output or a folder of Parquet shards)
    output: str  # the output folder: docs/ with the score column, rejected/ (the ledger), run.json
    stage: ClassifierStageConfig  # the classifier, its column, threshold and mode (docs/classifiers.md)
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # the Beam runner and its workers
    docs_per_shard: int = 20_000  # scored documents per Parquet shard of docs/


def run_scoring(job: ScoreJobConfig) -> dict[str, int]:
    """Run to completion; returns counts of kept and rejected documents."""
    result = ShardJob("classify-score", DocumentShards(job.shards), [Classify(job.stage)], job.output, job.runner,
                      settings=to_dict(job), docs_per_shard=job.docs_per_shard).run(False)
    return result.counts
