"""Deterministic, atomic Parquet shards from a PCollection.

The shard count follows from the record count (one pass to count), each record goes to the shard its
id hashes to, and each shard is sorted before it is written: the same input gives byte-identical shards
however many workers ran and in whatever order. Each file appears only when complete (temp + rename).
"""
from __future__ import annotations

import hashlib
import math

import apache_beam as beam
import pyarrow as pa

from assay.curation.shards import rows_to_table, shard_name, write_table_atomic


def _shard_of(key: str, count: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") % count


class _WriteShard(beam.DoFn):
    def __init__(self, directory: str, schema: pa.Schema, sort_key):
        self.directory, self.schema, self.sort_key = directory, schema, sort_key

    def process(self, element):
        (index, count), rows = element
        rows = sorted(rows, key=self.sort_key)
        path = f"{self.directory}/{shard_name(index, count)}"
        write_table_atomic(rows_to_table(rows, self.schema), path)
        yield path


class WriteShards(beam.PTransform):
    """records -> Parquet shards under `directory`; `to_row` maps a record to a dict matching `schema`."""

    def __init__(self, directory: str, schema: pa.Schema, per_shard: int, key_of, to_row, sort_key):
        super().__init__()
        self.directory, self.schema, self.per_shard = directory, schema, per_shard
        self.key_of, self.to_row, self.sort_key = key_of, to_row, sort_key

    def expand(self, records):
        count = records | "count" >> beam.combiners.Count.Globally()
        per_shard, key_of, to_row = self.per_shard, self.key_of, self.to_row

        def assign(record, total):
            shards = max(1, math.ceil(total / per_shard))
            return (_shard_of(key_of(record), shards), shards), to_row(record)

        return (
            records
            | "assign" >> beam.Map(assign, total=beam.pvalue.AsSingleton(count))
            | "group" >> beam.GroupByKey()
            | "write" >> beam.ParDo(_WriteShard(self.directory, self.schema, self.sort_key))
        )


def doc_sort_key(row: dict) -> tuple:
    return (row["id"], row.get("source") or "")


def ledger_sort_key(row: dict) -> tuple:
    return (row["id"] or "", row["stage"], row["reason"], row["source"] or "", row["detail"] or "")


def ledger_key(rejection) -> str:
    return "\x00".join((rejection.id, rejection.stage, rejection.reason, rejection.source, rejection.detail))
