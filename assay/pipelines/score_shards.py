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
    shards: str
    output: str
    stage: ClassifierStageConfig
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    docs_per_shard: int = 20_000


def run_scoring(job: ScoreJobConfig) -> dict[str, int]:
    """Run to completion; returns counts of kept and rejected documents."""
    result = ShardJob("classify-score", DocumentShards(job.shards), [Classify(job.stage)], job.output, job.runner,
                      settings=to_dict(job), docs_per_shard=job.docs_per_shard).run(False)
    return result.counts
