"""`assay synth decontam`: drop documents that contain evaluation text, from synthetic or web shards.

    shards -> Documents -> n-gram decontamination (assay/curation/decontam.py) -> OUT/docs/*.parquet
                                                                        -> OUT/rejected/ (names the benchmark item)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from assay.curation.decontam import DecontamConfig, DecontamStage
from assay.groundwork.config import to_dict
from assay.pipelines.job.runner import RunnerConfig
from assay.pipelines.job.shard_job import ShardJob
from assay.pipelines.job.sources import DocumentShards
from assay.pipelines.job.steps import PerDocument


@dataclass
class DecontamJobConfig:
    """What `assay synth decontam` checks, against which evaluation sets, and where the clean shards go."""

    shards: str  # the document shards to check (synthetic or web)
    output: str  # the output folder: docs/ (the clean documents), rejected/ (the ledger), run.json
    decontam: DecontamConfig = field(default_factory=DecontamConfig)  # the evaluation sets and the n-gram test
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # the Beam runner and its workers
    docs_per_shard: int = 20_000  # kept documents per Parquet shard of docs/


def run_decontam(job: DecontamJobConfig) -> dict:
    settings = {"shards": job.shards, "decontam": to_dict(job.decontam)}
    result = ShardJob("synth-decontam", DocumentShards(job.shards), [PerDocument(DecontamStage(job.decontam))],
                      job.output, job.runner, settings=settings, docs_per_shard=job.docs_per_shard).run(False)
    return result.counts
