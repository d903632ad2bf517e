"""`assay synth decontam`: drop documents that contain evaluation text, from synthetic or web shards.

    shards -> Documents -> n-gram decontamination (curation/decontam.py) -> OUT/docs/*.parquet
                                                                        -> OUT/rejected/ (names the benchmark item)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import apache_beam as beam

from curation.decontam import DecontamConfig, DecontamStage
from pipelines.job.runner import build_options
from pipelines.classify_score import ReadShardFn, input_shards
from pipelines.job.beam_fns import REJECTED, apply_stages
from pipelines.synth_beam import finish_output, input_schema, prepare_staging, write_output


@dataclass
class DecontamJobConfig:
    shards: str
    output: str
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    runner: str = "local"
    workers: int = 2
    mode: str = "multi_processing"
    docs_per_shard: int = 20_000


def run_decontam(job: DecontamJobConfig) -> dict:
    files = input_shards(job.shards)
    schema = input_schema(files, {})  # the input's columns, unchanged
    staging = prepare_staging(job.output)
    runner, options = build_options(job.runner, job.workers, job.mode)
    p = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
    read = (p | "shards" >> beam.Create(files) | "spread" >> beam.Reshuffle()
            | "read" >> beam.ParDo(ReadShardFn()).with_outputs(REJECTED, main="docs"))
    kept, flagged = apply_stages(read.docs, [DecontamStage(job.decontam)], None)
    write_output(kept, [read[REJECTED], flagged], staging, schema, job.docs_per_shard)
    p.run().wait_until_finish()
    info = {"job": "decontam", "shards": job.shards, "decontam": dataclasses.asdict(job.decontam)}
    return finish_output(job.output, staging, schema, info)
