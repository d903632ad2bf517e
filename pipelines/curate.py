"""The phase-1 web curation pipeline: read -> extract -> langid -> filters -> PII -> dedup -> classifiers -> shards.

Kept documents and the ledger of drops are written to a staging folder; only a run that finishes moves
them into place, so a killed run leaves the previous output (or nothing) and a rerun gives the same files.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from curation.document import LEDGER_SCHEMA
from curation.extract import ExtractText
from curation.filters import build_filter_stages
from curation.langid import IdentifyLanguage
from curation.pii import MaskPII
from curation.readers import expand_inputs
from curation.shards import (DOCS_DIR, LEDGER_DIR, RUN_FILE, STATS_DIR, doc_schema, ensure_nonempty, is_remote,
                             publish, write_bytes_atomic)
from curation.stage import Stage
from pipelines.job.runner import DASK_NAMES, build_options
from groundwork.config import to_dict
from pipelines.curate_config import RunConfig
from pipelines.job.dask_cluster import close_clients, dask_address, local_cluster, partition_args
from pipelines.job.dedup import EXACT_COLUMNS, FUZZY_COLUMNS, ExactDedup, FuzzyDedup
from pipelines.job.beam_fns import REJECTED, ReadFn, apply_stages, split_outputs
from pipelines.job.write import WriteShards, doc_sort_key, ledger_key, ledger_sort_key

STAGING = ".staging"


def document_stages(cfg: RunConfig) -> list[Stage]:
    """The per-document stages in run order (dedup and classifiers are whole-collection steps)."""
    stages: list[Stage] = []
    for name in cfg.stages:
        if name == "extract":
            stages.append(ExtractText(cfg.extract))
        elif name == "langid":
            stages.append(IdentifyLanguage(cfg.langid))
        elif name == "filters":
            stages.extend(build_filter_stages(cfg.filters))
        elif name == "pii":
            stages.append(MaskPII(cfg.pii))
    return stages


def classifier_configs(cfg: RunConfig) -> list:
    if "classifiers" not in cfg.stages or not cfg.classifiers:
        return []
    from pipelines.job.classify import ClassifierStageConfig
    from groundwork.config import from_dict

    return [from_dict(ClassifierStageConfig, dict(c), f"classifiers[{i}]") for i, c in enumerate(cfg.classifiers)]


def output_schema(cfg: RunConfig) -> pa.Schema:
    columns: dict[str, pa.DataType] = {}
    for stage in document_stages(cfg):
        columns.update(stage.columns)
    if "dedup" in cfg.stages:
        if cfg.dedup.exact:
            columns.update(EXACT_COLUMNS)
        if cfg.dedup.fuzzy:
            columns.update(FUZZY_COLUMNS)
    for c in classifier_configs(cfg):
        columns[c.column] = pa.float64()
    return doc_schema(columns)


def stage_order(cfg: RunConfig) -> list[str]:
    order = ["read"] + [s.name for s in document_stages(cfg)]
    if "dedup" in cfg.stages:
        order += (["exact_dedup"] if cfg.dedup.exact else []) + (["fuzzy_dedup"] if cfg.dedup.fuzzy else [])
    order += [f"classify:{c.column}" for c in classifier_configs(cfg)]
    return order


def chain_document_stages(docs, stages: list[Stage], progress_dir: str | None, timeout_s: float = 0.0):
    """docs -> (kept, [rejected, ...]) through the per-document stages in order, fused into one DoFn."""
    if not stages:
        return docs, []
    kept, dropped = apply_stages(docs, stages, progress_dir, timeout_s=timeout_s)
    return kept, [dropped]


def build_pipeline(p: beam.Pipeline, cfg: RunConfig, staging: str, progress_dir: str | None) -> None:
    inputs = expand_inputs(cfg.input.paths, cfg.input.reader)
    read = (
        p
        | "inputs" >> beam.Create(inputs)
        | "spread" >> beam.Reshuffle()
        | "read" >> beam.ParDo(ReadFn(cfg.input.reader, progress_dir)).with_outputs(REJECTED, main="docs")
    )
    read_docs, read_rejected = split_outputs(read, "read", main="docs")
    docs, dropped = chain_document_stages(read_docs, document_stages(cfg), progress_dir, cfg.runner.stage_timeout_s)
    rejected = [read_rejected, *dropped]
    if "dedup" in cfg.stages:
        if cfg.dedup.exact:
            docs, dropped = docs | "exact_dedup" >> ExactDedup()
            rejected.append(dropped)
        if cfg.dedup.fuzzy:
            docs, dropped = docs | "fuzzy_dedup" >> FuzzyDedup(cfg.dedup.minhash)
            rejected.append(dropped)
    if classifier_configs(cfg):
        from pipelines.job.classify import apply_classifier_stage

        for c in classifier_configs(cfg):
            docs, dropped = apply_classifier_stage(docs, c)
            rejected.append(dropped)

    schema = output_schema(cfg)
    docs_paths = docs | "write_docs" >> WriteShards(
        f"{staging}/{DOCS_DIR}", schema, cfg.output.docs_per_shard,
        key_of=lambda d: d.id, to_row=lambda d: d.to_row(), sort_key=doc_sort_key)
    ledger_paths = (
        rejected
        | "ledger" >> beam.Flatten()
        | "write_ledger" >> WriteShards(
            f"{staging}/{LEDGER_DIR}", LEDGER_SCHEMA, cfg.output.ledger_per_shard,
            key_of=ledger_key, to_row=lambda r: r.to_row(), sort_key=ledger_sort_key)
    )
    # one sink that needs both writes: the DaskRunner computes only the graph of the pipeline's last transform
    _ = (docs_paths, ledger_paths) | "written" >> beam.Flatten()


@dataclass
class RunResult:
    output: str
    funnel: dict
    seconds: float


def run_curation(cfg: RunConfig, output: str | None = None, show_progress: bool | None = None) -> RunResult:
    """Run the pipeline to completion and publish its output; returns the funnel."""
    from pipelines.job.funnel import funnel_from_metrics, funnel_from_outputs, write_stats

    out = output or cfg.output.path
    out = out.rstrip("/") if is_remote(out) else os.path.abspath(out)
    staging = f"{out}/{STAGING}"
    if not is_remote(out):
        shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run: never published, safe to drop
        os.makedirs(staging, exist_ok=True)
    local = cfg.runner.runner in ("local", "fnapi", "FnApiRunner")
    progress_dir = os.path.join(staging, "progress") if local else None
    with _cluster_for(cfg) as beam_args:
        runner, options = build_options(cfg.runner.runner, cfg.runner.workers, cfg.runner.mode, beam_args)
        started = time.time()
        p = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
        build_pipeline(p, cfg, staging, progress_dir)
        show = cfg.runner.progress if show_progress is None else show_progress
        watch_workers = cfg.runner.watchdog_s if local and cfg.runner.mode == "multi_processing" else 0.0
        if local and (show or watch_workers):
            result = _run_watched(p, progress_dir if show else None, stage_order(cfg), watch_workers)
        else:
            result = _run(p)
        seconds = time.time() - started

    ensure_nonempty(os.path.join(staging, DOCS_DIR), output_schema(cfg))
    ensure_nonempty(os.path.join(staging, LEDGER_DIR), LEDGER_SCHEMA)
    try:
        funnel = funnel_from_metrics(result, stage_order(cfg))
    except NotImplementedError:  # a runner without metrics (DaskRunner): count the shards instead
        funnel = funnel_from_outputs(staging, stage_order(cfg))
    funnel["seconds"] = round(seconds, 2)
    publish(staging, out)
    if not is_remote(out):
        os.makedirs(os.path.join(out, STATS_DIR), exist_ok=True)
    run_info = {"config": to_dict(cfg), "output": out, "started": started, "seconds": round(seconds, 2),
                "versions": _versions(), "funnel_totals": funnel["totals"]}
    if is_remote(out):  # histograms need the shards locally; `assay stats` works on a local copy
        from apache_beam.io.filesystems import FileSystems

        for path, payload in ((f"{out}/{STATS_DIR}/funnel.json", funnel), (f"{out}/{RUN_FILE}", run_info)):
            with FileSystems.create(path) as fh:
                fh.write(json.dumps(payload, indent=2, default=str).encode())
    else:
        write_stats(out, funnel, histograms=cfg.output.histograms)
        write_bytes_atomic(json.dumps(run_info, indent=2, default=str).encode(), os.path.join(out, RUN_FILE))
    return RunResult(out, funnel, seconds)


@contextlib.contextmanager
def _cluster_for(cfg: RunConfig):
    """The Beam arguments for this run; for the dask runner without a scheduler address, a local cluster of
    `runner.workers` processes lives for the run and its address is added."""
    args = list(cfg.runner.beam_args)
    if cfg.runner.runner not in DASK_NAMES:
        yield args
        return
    args = partition_args(args)
    if dask_address(args):
        try:
            yield args
        finally:
            close_clients()
        return
    with local_cluster(cfg.runner.workers) as address:
        yield [*args, f"--dask_client_address={address}"]


def _run(p: beam.Pipeline):
    result = p.run()
    result.wait_until_finish()
    return result


def _run_watched(p: beam.Pipeline, progress_dir: str | None, order: list[str], watchdog_s: float):
    """Run in a thread; show progress (when `progress_dir`) and watch the worker processes (when
    `watchdog_s`): a lost worker fails the run with its cause instead of a hang."""
    from pipelines.job.progress import watch
    from pipelines.job.watchdog import Watchdog

    box: dict = {}

    def target():
        try:
            box["result"] = _run(p)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    dog = Watchdog(thread, watchdog_s) if watchdog_s else None
    if dog:
        dog.start()
    if progress_dir:
        watch(thread, progress_dir, order)
    while thread.is_alive():
        thread.join(0.5)
        if dog and dog.error and thread.is_alive():
            thread.join(30)  # the workers were killed: the runner fails quickly
            break
    if (dog and dog.error) or "error" in box:
        from pipelines.job.watchdog import kill_workers

        kill_workers()  # a failed local run leaves no worker behind
    if dog and dog.error:
        raise dog.error
    if "error" in box:
        raise box["error"]
    return box["result"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("assay", "apache-beam", "datatrove", "trafilatura", "fasttext-numpy2-wheel", "pyarrow", "duckdb"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
