"""ShardJob: the one shape of every job that writes document shards (`assay run`, `assay classify score`, every
`assay synth` generator, annotate and decontam).

    source -> steps -> OUT/docs/*.parquet      kept documents, one column per signal
                     -> OUT/rejected/*.parquet  the ledger: every dropped record with its stage and reason
                     -> OUT/stats/funnel.json   documents and bytes in/out per stage, drops by reason
                     -> OUT/run.json            the job, its settings, versions, timing, counts

A job is a declaration: where its elements come from (pipelines/job/sources.py) and the steps they go
through (pipelines/job/steps.py). The shard schema is the source's columns plus every step's; the funnel's
stage order is the source's stages then every step's. Shards are written to OUT/.staging and moved into
place only when the run finishes, so a killed run leaves the previous output (or nothing) and a rerun gives
the same files. OUT must be absent, empty or an earlier output (curation.shards.claim_output): publishing
replaces OUT/docs and OUT/rejected, which in someone's own folder would delete their files.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from curation.document import LEDGER_SCHEMA
from curation.shards import (
    DOCS_DIR,
    FUNNEL_FILE,
    LEDGER_DIR,
    RUN_FILE,
    STAGING_DIR,
    STATS_DIR,
    claim_output,
    doc_schema,
    ensure_nonempty,
    is_remote,
    publish,
    shard_files,
)
from pipelines.job.runner import RunnerConfig
from pipelines.job.sources import Source
from pipelines.job.steps import PerDocument, Step, StepContext

STAGING = STAGING_DIR


@dataclass
class JobResult:
    output: str
    funnel: dict
    counts: dict[str, int]  # {"kept", "rejected"}: rows in docs/ and rejected/
    seconds: float
    record: dict  # what run.json holds


@dataclass
class ShardJob:
    name: str  # recorded in run.json: "curate", "classify-score", "synth-textbooks", ...
    source: Source
    steps: list[Step]
    output: str
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    settings: dict[str, Any] = field(default_factory=dict)  # the job's resolved config, recorded in run.json
    columns: dict[str, pa.DataType] = field(default_factory=dict)  # signal columns the steps do not declare
    docs_per_shard: int = 20_000
    ledger_per_shard: int = 50_000
    histograms: bool = False  # a PNG per numeric signal in stats/ (kept vs dropped), drawn with DuckDB
    #: more run.json entries from the finished pipeline's result (e.g. tokens and time per LLM backend)
    report: Callable[[Any], dict] | None = None

    def fused_steps(self) -> list[Step]:
        """The steps as built: adjacent per-document steps run as one chain."""
        fused: list[Step] = []
        for step in self.steps:
            if fused and isinstance(step, PerDocument) and isinstance(fused[-1], PerDocument):
                fused[-1] = fused[-1].then(step)
            else:
                fused.append(step)
        return fused

    def schema(self) -> pa.Schema:
        columns = {**self.source.columns(), **self.columns}
        for step in self.steps:
            columns.update(step.columns)
        return doc_schema(columns)

    def stage_order(self) -> list[str]:
        return [*self.source.names, *(name for step in self.steps for name in step.names)]

    def build(self, p, staging: str, progress_dir: str | None = None) -> None:
        """The whole pipeline: source, steps, then both shard writes behind one final sink (the DaskRunner
        computes only the graph of the pipeline's last transform)."""
        import apache_beam as beam

        from pipelines.job.write import WriteShards, doc_sort_key, ledger_key, ledger_sort_key

        ctx = StepContext(progress_dir, self.runner.stage_timeout_s)
        elements, rejected = self.source.expand(p, ctx)
        for step in self.fused_steps():
            elements, dropped = step.expand(elements, ctx)
            rejected = rejected + dropped
        docs_written = elements | "write_docs" >> WriteShards(
            f"{staging}/{DOCS_DIR}", self.schema(), self.docs_per_shard,
            key_of=lambda d: d.id, to_row=lambda d: d.to_row(), sort_key=doc_sort_key)
        ledger = (tuple(rejected) | "ledger" >> beam.Flatten()) if rejected else (
            p | "ledger:none" >> beam.Create([]))
        ledger_written = ledger | "write_ledger" >> WriteShards(
            f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA, self.ledger_per_shard,
            key_of=ledger_key, to_row=lambda r: r.to_row(), sort_key=ledger_sort_key)
        _ = (docs_written, ledger_written) | "written" >> beam.Flatten()

    def run(self, show_progress: bool | None = None) -> JobResult:
        """Run to completion, publish the shards, write the funnel and run.json."""
        from pipelines.job.funnel import funnel_from_metrics, funnel_from_outputs
        from pipelines.job.runner import beam_session, execute, new_pipeline

        out = self.output.rstrip("/") if is_remote(self.output) else os.path.abspath(self.output)
        staging = f"{out}/{STAGING}"
        if not is_remote(out):
            claim_output(out, self.name)  # absent, empty or an earlier output: a folder of the user's is never touched
            shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run: never published, safe to drop
            os.makedirs(staging, exist_ok=True)
        show = self.runner.progress if show_progress is None else show_progress
        progress_dir = f"{staging}/progress" if show and self.runner.is_local else None
        order = self.stage_order()
        with beam_session(self.runner) as beam_args:
            p = new_pipeline(self.runner, beam_args)
            self.build(p, staging, progress_dir)
            started = time.time()
            result = execute(p, self.runner, progress_dir, order)
            seconds = time.time() - started

        ensure_nonempty(f"{staging}/{DOCS_DIR}", self.schema())
        ensure_nonempty(f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA)
        try:
            funnel = funnel_from_metrics(result, order)
        except NotImplementedError:  # a runner without metrics (DaskRunner): count the shards instead
            funnel = funnel_from_outputs(staging, order)
        funnel["seconds"] = round(seconds, 2)
        counts = _counts(staging) if not is_remote(out) else {
            "kept": funnel["totals"]["kept"], "rejected": funnel["totals"]["rejected"]}
        publish(staging, out)
        record = {"job": self.name, "config": self.settings, "output": out, "started": started,
                  "seconds": round(seconds, 2), "versions": _versions(), "counts": counts,
                  "funnel_totals": funnel["totals"], **(self.report(result) if self.report else {})}
        _write_records(out, funnel, record, self.histograms)
        _write_card(out, self, funnel, record)
        return JobResult(out, funnel, counts, seconds, record)


def _counts(staging: str) -> dict[str, int]:
    import pyarrow.parquet as pq

    rows = {sub: sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(f"{staging}/{sub}"))
            for sub in (DOCS_DIR, LEDGER_DIR)}
    return {"kept": rows[DOCS_DIR], "rejected": rows[LEDGER_DIR]}


def _write_records(out: str, funnel: dict, record: dict, histograms: bool) -> None:
    """stats/funnel.json, run.json and (local outputs) the histograms; remote outputs get the two JSON
    files through Beam's FileSystems (histograms need the shards locally: `assay stats` on a local copy)."""
    files = {f"{out}/{STATS_DIR}/{FUNNEL_FILE}": funnel, f"{out}/{RUN_FILE}": record}
    if is_remote(out):
        from apache_beam.io.filesystems import FileSystems

        for path, payload in files.items():
            with FileSystems.create(path) as fh:
                fh.write(json.dumps(payload, indent=2, default=str).encode())
        return
    from groundwork.atomic import write_json_atomic

    for path, payload in files.items():
        write_json_atomic(payload, path, sort_keys=False)
    if histograms:
        from pipelines.job.funnel import draw_histograms

        draw_histograms(out)


def _write_card(out: str, job: ShardJob, funnel: dict, record: dict) -> None:
    """README.md, the dataset card (pipelines/job/card.py), beside run.json."""
    from pipelines.job.card import languages_of, shard_output_card, sources_of, write_card

    languages = [] if is_remote(out) else languages_of(shard_files(f"{out}/{DOCS_DIR}"))
    write_card(out, shard_output_card(job.name, record, funnel, sources_of(job.source), languages))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("assay", "apache-beam", "datatrove", "trafilatura", "resiliparse", "fasttext-numpy2-wheel",
                 "pyarrow", "duckdb", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
