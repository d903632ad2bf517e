"""Beam pipeline: read each pool's matching documents with DuckDB, split off the held-out ones, tokenize the
rest with EOS appended, and stage the token ids as Parquet (pool, id, n_tokens, tokens).

One unit of work is a chunk of rows of one shard file of one pool: the worker reads it with DuckDB (the
pool's checked predicate applied, on a connection that can read the pools' files only), tokenizes it in one batch and
writes one staged file named after the chunk.
Chunks spread over the workers; nothing else crosses between them except the few held-out documents, so
the output does not depend on worker count or timing.

A document the tokenizer cannot encode (its Rust code fails or panics) stops the mix with a TokenizerError
naming the document, not a traceback: the chunk writes a failure record instead of its staged file, later
chunks see it and skip their work, and the driver raises after the pipeline (`raise_failures`).
"""
from __future__ import annotations

import json
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.curation.shards import write_table_atomic
from assay.pipelines.mix.pools import PoolFiles, is_heldout, pool_query
from assay.pipelines.mix.recipe import MixRunnerConfig
from assay.pipelines.mix.staged import STAGED_DTYPE, STAGED_SCHEMA
from assay.trainer.token_shards import heldout_pools, write_heldout

HELDOUT = "heldout"
FAILED = "failed"  # folder beside the staged tokens: one record per work item the tokenizer failed on


def failure_dir(staging: str) -> str:
    return os.path.join(os.path.dirname(staging.rstrip("/")), FAILED)


def failures(staging: str) -> list[dict]:
    """The failure records of a tokenize run, in work-item order."""
    folder = failure_dir(staging)
    if not os.path.isdir(folder):
        return []
    records = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                records.append(json.load(fh))
    return records


def raise_failures(staging: str, tokenizer: str) -> None:
    """TokenizerError for the first document the tokenizer could not encode, if any."""
    from assay.trainer.tokenizer import TokenizerError

    found = failures(staging)
    if found:
        first = found[0]
        doc = f"document {first['id']!r}" if first["id"] is not None else "a batch of documents"
        raise TokenizerError(
            f"tokenizer {tokenizer} cannot encode {doc} of pool {first['pool']!r}: {first['reason']} "
            f"({len(found)} work item(s) failed; nothing was written). A tokenizer's normalizer and pre-tokenizer "
            "run over every document: use another tokenizer.json, or leave tokenizer.path empty to train one from "
            "the pools")


def chunk_tasks(pools: list[PoolFiles], rows_per_task: int) -> list[tuple[str, str, str]]:
    """(pool, staged file name, DuckDB query) per chunk of rows of every pool file."""
    tasks = []
    for pool in pools:
        for fi, path in enumerate(pool.files):
            rows = pq.ParquetFile(path).metadata.num_rows
            quoted = path.replace("'", "''")
            for ci, start in enumerate(range(0, rows, rows_per_task)):
                where = (f"filename = '{quoted}' AND file_row_number >= {start} "
                         f"AND file_row_number < {start + rows_per_task}")
                tasks.append((pool.name, f"{pool.name}-{fi:05d}-{ci:05d}.parquet",
                              pool_query(pool, extra_where=where, row_numbers=True)))
    return tasks


class TokenizeChunk(beam.DoFn):
    """(pool, staged name, query) -> a staged Parquet file of token ids; held-out documents tagged `heldout`.

    The tokenizer loads once per worker. Documents are encoded with special tokens treated as text, so a
    literal "<|endoftext|>" inside a document never becomes the EOS id.
    """

    def __init__(self, tokenizer_path: str, staging: str, heldout_fraction: float, files: list[str]):
        self.tokenizer_path, self.staging, self.heldout_fraction = tokenizer_path, staging, heldout_fraction
        self.files = files  # the pools' shard files: all a worker's DuckDB may read
        self._tok = None

    def setup(self):
        from assay.trainer.tokenizer import eos_id, load_tokenizer

        self._tok = load_tokenizer(self.tokenizer_path)
        self._tok.encode_special_tokens = True
        self._eos = eos_id(self._tok)

    def process(self, task):
        from assay.curation.duckdb_locked import locked_connection

        pool, name, sql = task
        stopped = bool(failures(self.staging))  # the mix stops anyway: spend no more time on it
        rows = []
        if not stopped:
            with locked_connection(self.files) as con:
                rows = con.execute(sql).fetchall()
        train = []
        for doc_id, text in rows:
            if is_heldout(text, self.heldout_fraction):
                yield beam.pvalue.TaggedOutput(HELDOUT, (pool, (doc_id, text)))
            else:
                train.append((doc_id, text))
        train.sort()
        staged = None if stopped else self._stage(pool, name, train)
        if staged is not None:
            yield staged

    def _stage(self, pool: str, name: str, train: list) -> str | None:
        """The staged file of these (id, text) documents, or None (and a failure record) when the tokenizer
        fails on one of them."""
        from assay.trainer.tokenizer import EncodeError, encode_all

        try:
            encodings = encode_all(self._tok, [text for _, text in train])
        except EncodeError as exc:
            self._record_failure(pool, name, None if exc.index is None else train[exc.index][0], exc.reason)
            return None
        ids, counts = [], []
        for enc in encodings:
            doc = np.empty(len(enc.ids) + 1, dtype=STAGED_DTYPE)
            doc[:-1] = enc.ids
            doc[-1] = self._eos
            ids.append(doc.tobytes())
            counts.append(len(doc))
        table = pa.Table.from_pydict({"pool": [pool] * len(train), "id": [d for d, _ in train],
                                      "n_tokens": counts, "tokens": ids}, schema=STAGED_SCHEMA)
        path = f"{self.staging}/{name}"
        write_table_atomic(table, path, compression="none")
        return path

    def _record_failure(self, pool: str, name: str, doc_id, reason: str) -> None:
        from assay.groundwork.atomic import write_text_atomic

        record = {"pool": pool, "work_item": name, "id": doc_id, "reason": reason}
        write_text_atomic(json.dumps(record), os.path.join(failure_dir(self.staging), name + ".json"))


class WriteHeldout(beam.DoFn):
    """(pool, [(id, text), ...]) -> the pool's held-out file in the token-shard folder `directory`."""

    def __init__(self, directory: str):
        self.directory = directory

    def process(self, element):
        pool, docs = element
        yield write_heldout(self.directory, pool, docs)


def build_tokenize_pipeline(p: beam.Pipeline, pools: list[PoolFiles], tokenizer_path: str, staging: str,
                            heldout_to: str | None, heldout_fraction: float, rows_per_task: int) -> None:
    """`heldout_to`: the token-shard folder whose held-out files to write (None: the held-out documents are
    only left out, as in a dry run)."""
    staged = (
        p
        | "chunks" >> beam.Create(chunk_tasks(pools, rows_per_task))
        | "spread" >> beam.Reshuffle()
        | "tokenize" >> beam.ParDo(TokenizeChunk(tokenizer_path, staging, heldout_fraction,
                                                 [f for pool in pools for f in pool.files])).with_outputs(
            HELDOUT, main="staged")
    )
    if heldout_to is not None:
        (staged[HELDOUT] | "group heldout" >> beam.GroupByKey()
         | "write heldout" >> beam.ParDo(WriteHeldout(heldout_to)))


def write_empty_heldout(directory: str, pool: str) -> None:
    """Pools without held-out documents still get a (empty) file, so every pool has one."""
    if pool not in heldout_pools(directory):
        write_heldout(directory, pool, [])


def run_tokenize(pools: list[PoolFiles], tokenizer_path: str, staging: str, heldout_to: str | None,
                 heldout_fraction: float, runner: MixRunnerConfig) -> None:
    from assay.pipelines.job.runner import new_pipeline

    with new_pipeline(runner) as p:
        build_tokenize_pipeline(p, pools, tokenizer_path, staging, heldout_to, heldout_fraction,
                                runner.rows_per_task)
