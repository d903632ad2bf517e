"""`assay classify score`: a Beam pipeline that adds a classifier's score column to existing document shards.

    shards (Parquet) -> Documents -> classifier stage (RunInference) -> OUT/docs/*.parquet
                                                                     -> OUT/rejected/*.parquet (ledger)
Shards are staged under OUT/.staging and moved into place only when the run finishes.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from apache_beam.pvalue import TaggedOutput

from curation.document import DOC_COLUMNS, LEDGER_SCHEMA, Document, Rejection, stable_id
from curation.shards import DOCS_DIR, LEDGER_DIR, doc_schema, ensure_nonempty, publish, shard_files
from pipelines.job.runner import build_options
from pipelines.job.classify import ClassifierStageConfig, apply_classifier_stage, classifier_stage_columns
from pipelines.job.beam_fns import REJECTED
from pipelines.job.write import WriteShards, doc_sort_key, ledger_key, ledger_sort_key

STAGING = ".staging"


@dataclass
class ScoreJobConfig:
    shards: str
    output: str
    stage: ClassifierStageConfig
    runner: str = "local"
    workers: int = 2
    mode: str = "multi_processing"
    docs_per_shard: int = 20_000


def input_shards(path: str) -> list[str]:
    if os.path.isdir(os.path.join(path, DOCS_DIR)):
        path = os.path.join(path, DOCS_DIR)
    files = [path] if os.path.isfile(path) else shard_files(path)
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {path!r}: pass an `assay run` output or a docs/ folder")
    return files


def scored_schema(files: list[str], cfg: ClassifierStageConfig) -> pa.Schema:
    """The input shards' signal columns (all files) plus the new score column."""
    columns: dict[str, pa.DataType] = {}
    for path in files:
        try:
            schema = pq.read_schema(path)
        except Exception:  # unreadable: ReadShardFn sends it to the ledger
            continue
        for f in schema:
            if f.name not in DOC_COLUMNS:
                columns[f.name] = f.type
    columns.update(classifier_stage_columns(cfg))
    return doc_schema(columns)


class ReadShardFn(beam.DoFn):
    """One Parquet shard -> Documents with all their signal columns; an unreadable shard (or the rest of
    it) goes to the ledger as "unreadable_shard" instead of failing the run."""

    def process(self, path: str):
        done = 0
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
                for row in batch.to_pylist():
                    done += 1
                    yield Document.from_row(row)
        except Exception as exc:  # corrupt or truncated file: record it, keep scoring the other shards
            yield TaggedOutput(REJECTED, Rejection(stage="classify:read", reason="unreadable_shard", source=path,
                                                   id=stable_id(path, "shard"),
                                                   detail=f"after {done} rows: {type(exc).__name__}: {exc}"))


def build_score_pipeline(p: beam.Pipeline, files: list[str], job: ScoreJobConfig, staging: str) -> None:
    read = (p | "shards" >> beam.Create(files) | "spread" >> beam.Reshuffle()
            | "read" >> beam.ParDo(ReadShardFn()).with_outputs(REJECTED, main="docs"))
    kept, dropped = apply_classifier_stage(read.docs, job.stage)
    rejected = (read[REJECTED], dropped) | "ledger" >> beam.Flatten()
    schema = scored_schema(files, job.stage)
    _ = kept | "write_docs" >> WriteShards(f"{staging}/{DOCS_DIR}", schema, job.docs_per_shard,
                                           key_of=lambda d: d.id, to_row=lambda d: d.to_row(), sort_key=doc_sort_key)
    _ = rejected | "write_ledger" >> WriteShards(f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA, 50_000, key_of=ledger_key,
                                                 to_row=lambda r: r.to_row(), sort_key=ledger_sort_key)


def run_scoring(job: ScoreJobConfig) -> dict[str, int]:
    """Run to completion; returns counts of kept and rejected documents."""
    files = input_shards(job.shards)
    out = os.path.abspath(job.output)
    staging = os.path.join(out, STAGING)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    runner, options = build_options(job.runner, job.workers, job.mode)
    p = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
    build_score_pipeline(p, files, job, staging)
    p.run().wait_until_finish()
    counts = {}
    for sub, schema in ((DOCS_DIR, scored_schema(files, job.stage)), (LEDGER_DIR, LEDGER_SCHEMA)):
        staged = os.path.join(staging, sub)
        ensure_nonempty(staged, schema)
        counts[sub] = sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(staged))
    publish(staging, out)
    return {"kept": counts[DOCS_DIR], "rejected": counts[LEDGER_DIR]}
