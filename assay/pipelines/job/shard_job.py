"""ShardJob: the one shape of every job that writes document shards (`assay run`, `assay classify score`, every
`assay synth` generator, annotate and decontam).

    source -> steps -> OUT/docs/*.parquet      kept documents, one column per signal
                     -> OUT/rejected/*.parquet  the ledger: every dropped record with its stage and reason
                     -> OUT/stats/funnel.json   documents and bytes in/out per stage, drops by reason
                     -> OUT/run.json            the job, its settings, versions, timing, counts

A job is a declaration: where its elements come from (assay/pipelines/job/sources.py) and the steps they go
through (assay/pipelines/job/steps.py). The shard schema is the source's columns plus every step's; the funnel's
stage order is the source's stages then every step's. A run holds OUT's lock (a second run refuses, naming
its pid), writes everything, run.json with the shards' checksums included, to OUT/.staging/<run id>/, and
publishes it in one step (assay.curation.shards.publish_run: OUT/current switches to OUT/runs/<run id>), so readers
see the whole previous output or the whole new one, a killed run leaves the previous output (its staging is
removed, with a message, by the next run) and a rerun gives the same files. OUT must be absent, empty or an
earlier output (assay.curation.shards.claim_output): publishing replaces OUT/docs and OUT/rejected, which in
someone's own folder would delete their files.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from assay.curation.document import LEDGER_EXCERPT_CHARS, LEDGER_SCHEMA, LEDGER_TEXT_LIMIT
from assay.curation.shards import (
    DOCS_DIR,
    FUNNEL_FILE,
    LEDGER_DIR,
    RUN_FILE,
    STAGING_DIR,
    STATS_DIR,
    claim_output,
    clean_leftovers,
    doc_schema,
    ensure_nonempty,
    file_checksums,
    is_remote,
    new_run_id,
    publish,
    publish_run,
    shard_files,
)
from assay.groundwork.atomic import output_lock, staging_folder
from assay.pipelines.job.runner import DASK_NAMES, RunnerConfig
from assay.pipelines.job.sources import InputFiles, Source
from assay.pipelines.job.steps import PerDocument, Step, StepContext

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
    #: the ledger keeps each dropped record's text (up to LEDGER_TEXT_LIMIT) instead of an excerpt
    ledger_full_text: bool = False
    #: local outputs read from input files: finished files are saved as they finish, and a rerun after a kill
    #: reads only the others (assay/pipelines/job/resume.py)
    resume: bool = True
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

    def build(self, p, staging: str, progress_dir: str | None = None, resume_folder: str | None = None) -> None:
        """The whole pipeline: source, steps, then both shard writes behind one final sink (the DaskRunner
        computes only the graph of the pipeline's last transform). With `resume_folder`, input files are
        resumable work units through the leading per-document step (assay/pipelines/job/resume.py)."""
        import apache_beam as beam

        from assay.pipelines.job.write import WriteShards, doc_sort_key, ledger_key, ledger_sort_key

        ctx = StepContext(progress_dir, self.runner.stage_timeout_s)
        steps = self.fused_steps()
        if resume_folder and isinstance(self.source, InputFiles):
            chain = steps[0] if steps and isinstance(steps[0], PerDocument) else None
            elements, rejected = self.source.expand_units(p, ctx, chain, resume_folder)
            steps = steps[1:] if chain else steps
        else:
            elements, rejected = self.source.expand(p, ctx)
        for step in steps:
            elements, dropped = step.expand(elements, ctx)
            rejected = rejected + dropped
        ledger = (tuple(rejected) | "ledger" >> beam.Flatten()) if rejected else (
            p | "ledger:none" >> beam.Create([]))
        if self.source.ids_per_file:
            from assay.pipelines.job.sources import QualifyIds

            elements, ledger = (elements, ledger) | "unique_ids" >> QualifyIds()
        docs_written = elements | "write_docs" >> WriteShards(
            f"{staging}/{DOCS_DIR}", self.schema(), self.docs_per_shard,
            key_of=lambda d: d.id, to_row=lambda d: d.to_row(), sort_key=doc_sort_key)
        limit = LEDGER_TEXT_LIMIT if self.ledger_full_text else LEDGER_EXCERPT_CHARS
        ledger_written = ledger | "write_ledger" >> WriteShards(
            f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA, self.ledger_per_shard,
            key_of=ledger_key, to_row=lambda r: r.to_row(limit), sort_key=ledger_sort_key)
        _ = (docs_written, ledger_written) | "written" >> beam.Flatten()

    def run(self, show_progress: bool | None = None) -> JobResult:
        """Run to completion, publish the shards, write the funnel and run.json."""
        out = self.output.rstrip("/") if is_remote(self.output) else os.path.abspath(self.output)
        if is_remote(out):
            return self._run_in(out, f"{out}/{STAGING}", show_progress)
        claim_output(out, self.name)  # absent, empty or an earlier output: a folder of the user's is never touched
        with output_lock(out, say=_say):  # a second run into `out` refuses, naming this one's pid
            clean_leftovers(out, _say)
            run_id = new_run_id()
            staging = staging_folder(out, run_id)
            os.makedirs(staging)
            resume_folder = None
            if self.resume and isinstance(self.source, InputFiles) and _workers_share_this_disk(self.runner):
                from assay.pipelines.job.resume import fingerprint, prepare_store

                resume_folder = prepare_store(out, fingerprint(self.name, self.settings, self.stage_order()), _say)
            try:
                result = self._run_in(out, staging, show_progress, run_id, resume_folder)
                if resume_folder:
                    from assay.pipelines.job.resume import remove_store

                    remove_store(out)  # published: nothing left to resume
                return result
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # a failed run's staging; a published one was moved
                with contextlib.suppress(OSError):
                    os.rmdir(staging_folder(out))

    def _run_in(self, out: str, staging: str, show_progress: bool | None, run_id: str = "",
                resume_folder: str | None = None) -> JobResult:
        from assay.pipelines.job.funnel import funnel_from_metrics, funnel_from_outputs
        from assay.pipelines.job.runner import beam_session, execute, new_pipeline

        show = self.runner.progress if show_progress is None else show_progress
        progress_dir = f"{staging}/progress" if show and self.runner.is_local else None
        order = self.stage_order()
        with beam_session(self.runner) as beam_args:
            p = new_pipeline(self.runner, beam_args)
            self.build(p, staging, progress_dir, resume_folder)
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
        record = {"job": self.name, "config": self.settings, "output": out, "started": started,
                  "seconds": round(seconds, 2), "versions": _versions(), "counts": counts,
                  "funnel_totals": funnel["totals"], **(self.report(result) if self.report else {})}
        if is_remote(out):
            publish(staging, out)
            _write_records(out, funnel, record, False)
            _write_card(out, self, funnel, record)
            return JobResult(out, funnel, counts, seconds, record)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
        record["run_id"] = run_id
        record["files"] = file_checksums(staging)  # what `assay stats` / `assay sql` verify
        _write_records(staging, funnel, record, self.histograms)  # run.json is part of the run, before the switch
        _write_card(staging, self, funnel, record)  # README.md too: OUT/README.md links to the current run's
        publish_run(staging, out, run_id)
        return JobResult(out, funnel, counts, seconds, record)


def _workers_share_this_disk(runner: RunnerConfig) -> bool:
    """Whether the workers can write to the output folder's disk: the local runner, or a local Dask cluster (no
    scheduler address of another machine given)."""
    return runner.is_local or (runner.runner in DASK_NAMES and
                               not any(a.startswith("--dask_client_address") for a in runner.beam_args))


def _say(message: str) -> None:
    """A note on stderr about the output folder (a lock taken over, leftovers removed)."""
    import sys

    print(f"assay: {message}", file=sys.stderr)


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
    from assay.groundwork.atomic import write_json_atomic

    for path, payload in files.items():
        write_json_atomic(payload, path, sort_keys=False)
    if histograms:
        from assay.pipelines.job.funnel import draw_histograms

        draw_histograms(out)


def _write_card(out: str, job: ShardJob, funnel: dict, record: dict) -> None:
    """README.md, the dataset card (assay/pipelines/job/card.py), beside run.json."""
    from assay.pipelines.job.card import languages_of, shard_output_card, sources_of, write_card

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
