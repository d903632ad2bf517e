"""`assay synth annotate`: rubric scores as label columns on existing document shards, in Beam.

    shards -> Documents -> batches -> one model per worker: P("0".."5") at the answer position
      -> OUT/docs/*.parquet with edu_score / knowledge_score (+ *_annotator) columns, OUT/rejected/ ledger
The classifiers train on these columns (`assay classify labels --score-column edu_score`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.job.runner import build_options
from pipelines.classify_score import ReadShardFn, input_shards
from pipelines.job.beam_fns import NAMESPACE, REJECTED
from pipelines.synth_beam import (USAGE_FIELDS, finish_output, input_schema, prepare_staging, usage_from_metrics,
                                  write_output)
from synth.backends import check_backend_config
from synth.config import BackendConfig
from synth.rubric import RubricConfig, rubric_columns


@dataclass
class AnnotateJobConfig:
    shards: str
    output: str
    backend: BackendConfig
    rubric: RubricConfig = field(default_factory=RubricConfig)
    cache_dir: str | None = None  # default: OUTPUT/cache
    batch_size: int = 8
    runner: str = "local"
    workers: int = 1
    mode: str = "multi_processing"
    docs_per_shard: int = 20_000


class AnnotateFn(beam.DoFn):
    def __init__(self, backend: BackendConfig, rubric: RubricConfig, cache_dir: str):
        self.backend_cfg, self.rubric, self.cache_dir = backend, rubric, cache_dir

    def setup(self) -> None:
        from synth.backends import shared_backend
        from synth.cache import RequestCache

        self.backend = shared_backend(self.backend_cfg)
        self.cache = RequestCache(self.cache_dir)
        prefix = f"synth|{self.backend.kind}"
        self.counters = {f: Metrics.counter(NAMESPACE, f"{prefix}|{f}") for f in USAGE_FIELDS}
        self.millis = Metrics.counter(NAMESPACE, f"{prefix}|millis")
        self.unscored = Metrics.counter(NAMESPACE, "annotate|unscored")

    def process(self, batch):
        from synth.rubric import annotate

        before, start = self.backend.usage.to_dict(), time.perf_counter()
        docs = annotate(self.backend, list(batch), self.rubric, self.cache)
        after = self.backend.usage.to_dict()
        for f in USAGE_FIELDS:
            self.counters[f].inc(after[f] - before[f])
        self.millis.inc(int((time.perf_counter() - start) * 1000))
        for doc in docs:
            if any(doc.meta.get(name) is None for name in self.rubric.rubrics):
                self.unscored.inc()
            yield doc


def run_annotate(job: AnnotateJobConfig) -> dict:
    files = input_shards(job.shards)
    check_backend_config(job.backend)
    cache_dir = job.cache_dir or os.path.join(os.path.abspath(job.output), "cache")
    schema = input_schema(files, rubric_columns(job.rubric))
    staging = prepare_staging(job.output)
    runner, options = build_options(job.runner, job.workers, job.mode)
    p = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
    read = (p | "shards" >> beam.Create(files) | "spread" >> beam.Reshuffle()
            | "read" >> beam.ParDo(ReadShardFn()).with_outputs(REJECTED, main="docs"))
    scored = (read.docs | "batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=job.batch_size)
              | "annotate" >> beam.ParDo(AnnotateFn(job.backend, job.rubric, cache_dir)))
    write_output(scored, [read[REJECTED]], staging, schema, job.docs_per_shard)
    result = p.run()
    result.wait_until_finish()
    usage = usage_from_metrics(result)
    info = {"job": "annotate", "shards": job.shards, "rubric": dataclasses.asdict(job.rubric),
            "backend": dataclasses.asdict(job.backend), "usage": usage}
    return {**finish_output(job.output, staging, schema, info), "usage": usage}
