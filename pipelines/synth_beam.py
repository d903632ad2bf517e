"""Beam pieces shared by the synthetic-data jobs: answering requests on a worker's one model, turning
answers into Documents, quality control (dedup against itself and the web, decontamination), and writing
a curation-style output (docs/, rejected/, stats/) atomically.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import traceback

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from curation.decontam import DecontamConfig, DecontamStage
from curation.document import DOC_COLUMNS, LEDGER_SCHEMA, Document, Rejection
from curation.shards import (DOCS_DIR, LEDGER_DIR, STATS_DIR, doc_schema, ensure_nonempty, publish, shard_files,
                             write_bytes_atomic)
from pipelines.job.dedup import EXACT_COLUMNS, FUZZY_COLUMNS, ExactDedup, FuzzyDedup
from pipelines.job.beam_fns import NAMESPACE, REJECTED, apply_stages
from pipelines.job.write import WriteShards, doc_sort_key, ledger_key, ledger_sort_key
from synth.config import BackendConfig, Sampling
from synth.isolation import SandboxUnavailable

STAGING = ".staging"
#: Web documents joining the dedup get this id prefix: it sorts before any generated id, so when a
#: generated text duplicates a web page, the web page is the one kept and the generated one is dropped.
WEB_ID_PREFIX = "!web:"
USAGE_FIELDS = ("requests", "tokens_in", "tokens_out", "cache_hits")


class AnswerFn(beam.DoFn):
    """Batches of PromptItems -> Answers, through the request cache, on this worker's one loaded model."""

    def __init__(self, backend: BackendConfig, sampling: Sampling, cache_dir: str | None):
        self.backend_cfg, self.sampling, self.cache_dir = backend, sampling, cache_dir

    def setup(self) -> None:
        from synth.backends import shared_backend
        from synth.cache import RequestCache

        self.backend = shared_backend(self.backend_cfg)
        self.cache = RequestCache(self.cache_dir)
        prefix = f"synth|{self.backend.kind}"
        self.counters = {f: Metrics.counter(NAMESPACE, f"{prefix}|{f}") for f in USAGE_FIELDS}
        self.millis = Metrics.counter(NAMESPACE, f"{prefix}|millis")

    def process(self, batch):
        from synth.backends.base import BackendUnavailable
        from synth.runner import answer_items

        batch = list(batch)
        before = self.backend.usage.to_dict()
        start = time.perf_counter()
        try:
            yield from answer_items(self.backend, batch, self.sampling, self.cache)
        except BackendUnavailable:
            raise  # nothing can be answered: stop; a rerun resumes from the cache
        except Exception:  # some request is bad: answer one by one, ledger the ones that fail
            for item in batch:
                try:
                    yield from answer_items(self.backend, [item], self.sampling, self.cache)
                except BackendUnavailable:
                    raise
                except Exception as exc:
                    yield TaggedOutput(REJECTED, Rejection(
                        stage="synth:generate", reason="generation_error", id=item.id, source=f"synth:{item.generator}",
                        detail=f"{type(exc).__name__}: {exc}", signals=dict(item.labels, template_id=item.template_id),
                        text=json.dumps(item.messages, ensure_ascii=False)))
        after = self.backend.usage.to_dict()
        for f in USAGE_FIELDS:
            self.counters[f].inc(after[f] - before[f])
        self.millis.inc(int((time.perf_counter() - start) * 1000))


def answer(items, backend: BackendConfig, sampling: Sampling, cache_dir: str | None, batch_size: int, label: str):
    """PromptItems -> (answers, ledger records of requests the backend could not answer)."""
    out = (items
           | f"{label}:batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
           | f"{label}:answer" >> beam.ParDo(AnswerFn(backend, sampling, cache_dir)).with_outputs(REJECTED, main="answers"))
    return out.answers, out[REJECTED]


def split_outputs(element):
    """Document -> main output, Rejection -> the ledger output."""
    if isinstance(element, Rejection):
        yield TaggedOutput(REJECTED, element)
    else:
        yield element


def _element_id(element) -> tuple[str, str]:
    item = getattr(element, "item", element)  # an Answer, a PromptItem or an exercise spec
    return str(getattr(item, "id", "")), f"synth:{getattr(item, 'generator', getattr(item, 'kind', ''))}"


def apply_fn(pcoll, fn, label: str):
    """Map with a function returning a Document, a Rejection, or a list of them; returns (docs, rejected).
    An exception on one element becomes its ledger record ("stage_error"), not the end of the run; only a
    sandbox that cannot be applied stops it (fail closed)."""

    def run(element):
        try:
            out = fn(element)
        except SandboxUnavailable:  # the machine cannot isolate model-written code: stop the run, not one row
            raise
        except Exception as exc:
            element_id, source = _element_id(element)
            out = Rejection(stage=f"synth:{label}", reason="stage_error", id=element_id, source=source,
                            detail=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        yield from (out if isinstance(out, list) else [out])

    res = (pcoll | f"{label}:map" >> beam.FlatMap(run)
           | f"{label}:split" >> beam.FlatMap(split_outputs).with_outputs(REJECTED, main="kept"))
    return res.kept, res[REJECTED]


class ReadWebFn(beam.DoFn):
    """A web document shard -> Documents (text only) with the web id prefix, for dedup against the web."""

    def process(self, path: str):
        for batch in pq.ParquetFile(path).iter_batches(columns=["id", "text", "source", "url"], batch_size=2048):
            for row in batch.to_pylist():
                yield Document(id=WEB_ID_PREFIX + str(row["id"]), text=row["text"] or "", source=row["source"] or "",
                               url=row["url"] or "")


def _is_web(x) -> bool:
    return x.id.startswith(WEB_ID_PREFIX)


def quality_control(docs, web_files: list[str], dedup: bool, decontam: DecontamConfig | None):
    """Generated docs -> (kept, rejected): exact + MinHash dedup (curation's code) over the generated docs and
    any web shards, then n-gram decontamination. Web documents only serve as references: never output."""
    rejected = []
    if dedup:
        pool = docs
        if web_files:
            web = (docs.pipeline | "web:files" >> beam.Create(web_files) | "web:read" >> beam.ParDo(ReadWebFn()))
            pool = (docs, web) | "web:join" >> beam.Flatten()
        kept, exact_dups = pool | "exact" >> ExactDedup()
        kept, near_dups = kept | "fuzzy" >> FuzzyDedup()
        docs = kept | "web:drop" >> beam.Filter(lambda d: not _is_web(d))
        rejected += [exact_dups | "web:drop_exact" >> beam.Filter(lambda r: not _is_web(r)),
                     near_dups | "web:drop_near" >> beam.Filter(lambda r: not _is_web(r))]
    if decontam is not None:
        docs, contaminated = apply_stages(docs, [DecontamStage(decontam)], None)
        rejected.append(contaminated)
    return docs, rejected


def input_schema(files: list[str], extra: dict[str, pa.DataType]) -> pa.Schema:
    """The signal columns of every input shard (unreadable ones are skipped: the reader ledgers them) plus
    `extra`."""
    columns: dict[str, pa.DataType] = {}
    for path in files:
        try:
            schema = pq.read_schema(path)
        except Exception:
            continue
        columns.update({f.name: f.type for f in schema if f.name not in DOC_COLUMNS})
    columns.update(extra)
    return doc_schema(columns)


def synth_schema(columns: dict[str, pa.DataType]) -> pa.Schema:
    return doc_schema({**columns, **EXACT_COLUMNS, **FUZZY_COLUMNS})


def write_output(docs, rejected: list, staging: str, schema: pa.Schema, docs_per_shard: int) -> None:
    ledger = tuple(rejected) | "ledger:all" >> beam.Flatten() if rejected else None
    _ = docs | "write_docs" >> WriteShards(f"{staging}/{DOCS_DIR}", schema, docs_per_shard, key_of=lambda d: d.id,
                                           to_row=lambda d: d.to_row(), sort_key=doc_sort_key)
    if ledger is not None:
        _ = ledger | "write_ledger" >> WriteShards(f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA, 50_000, key_of=ledger_key,
                                                   to_row=lambda r: r.to_row(), sort_key=ledger_sort_key)


def prepare_staging(output: str) -> str:
    out = os.path.abspath(output)
    staging = os.path.join(out, STAGING)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def usage_from_metrics(result) -> dict[str, dict]:
    """Per backend: requests, tokens in/out, cache hits and seconds, summed over all workers."""
    from apache_beam.metrics.metric import MetricsFilter

    usage: dict[str, dict] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        parts = counter.key.metric.name.split("|")
        if len(parts) != 3 or parts[0] != "synth":
            continue
        entry = usage.setdefault(parts[1], {f: 0 for f in (*USAGE_FIELDS, "millis")})
        entry[parts[2]] = entry.get(parts[2], 0) + int(counter.committed or counter.attempted or 0)
    for entry in usage.values():
        entry["seconds"] = round(entry.pop("millis") / 1000, 3)
        entry["tokens_out_per_s"] = round(entry["tokens_out"] / entry["seconds"], 3) if entry["seconds"] else 0.0
    return usage


def finish_output(output: str, staging: str, schema: pa.Schema, run_info: dict) -> dict[str, int]:
    """Empty shards where nothing was written, counts, run.json, then move the staged shards into place."""
    counts = {}
    for sub, sch in ((DOCS_DIR, schema), (LEDGER_DIR, LEDGER_SCHEMA)):
        staged = os.path.join(staging, sub)
        ensure_nonempty(staged, sch)
        counts[sub] = sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(staged))
    out = os.path.abspath(output)
    publish(staging, out)
    info = dict(run_info, counts={"kept": counts[DOCS_DIR], "rejected": counts[LEDGER_DIR]})
    write_bytes_atomic(json.dumps(info, indent=2, sort_keys=True, default=str).encode(),
                       os.path.join(out, STATS_DIR, "synth_run.json"))
    return {"kept": counts[DOCS_DIR], "rejected": counts[LEDGER_DIR]}
