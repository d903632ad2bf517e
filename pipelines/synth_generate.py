"""`assay synth textbooks|exercises|rephrase`: generation as a Beam pipeline.

    requests (PromptItems) -> batches -> one model per worker (through the request cache) -> Documents
      -> dedup (exact + MinHash, against each other and optional web shards) -> decontamination
      -> OUT/docs/*.parquet, OUT/rejected/*.parquet (ledger), OUT/stats/{synth_run,coverage}.json
Exercises first run their answer programs in the sandbox; outline mode answers outlines, then sections.
The request cache (default OUT/cache) survives reruns: after a kill, a rerun generates only what is missing.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import apache_beam as beam

from curation.decontam import DecontamConfig
from curation.shards import STATS_DIR, list_shards
from pipelines.job.runner import build_options
from pipelines.classify_score import ReadShardFn, input_shards
from pipelines.job.beam_fns import REJECTED
from pipelines.synth_beam import (answer, apply_fn, finish_output, prepare_staging, quality_control, synth_schema,
                                  usage_from_metrics, write_output)
from synth.backends import check_backend_config
from synth.config import BackendConfig, Sampling
from synth.items import SYNTH_COLUMNS


@dataclass
class GenerateJobConfig:
    output: str
    backend: BackendConfig
    sampling: Sampling = field(default_factory=Sampling)
    cache_dir: str | None = None  # default: OUTPUT/cache
    batch_size: int = 8  # requests per worker batch
    dedup: bool = True
    dedup_against: str | None = None  # web shards (an `assay run` output) to dedup generated text against
    decontam: DecontamConfig | None = field(default_factory=DecontamConfig)
    runner: str = "local"
    workers: int = 1
    mode: str = "multi_processing"
    docs_per_shard: int = 20_000

    def resolved_cache(self) -> str:
        return self.cache_dir or os.path.join(os.path.abspath(self.output), "cache")


def _web_files(path: str | None) -> list[str]:
    if not path:
        return []
    docs = os.path.join(path, "docs")
    files = list_shards(docs if os.path.isdir(docs) else path)
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {path!r} to dedup against: pass an `assay run` output")
    return files


def _run(job: GenerateJobConfig, kind: str, build, settings: dict) -> dict:
    """Shared driver: build the pipeline with `build(p) -> docs, rejected`, run it, write the output."""
    from synth.coverage import write_coverage

    web_files = _web_files(job.dedup_against)
    check_backend_config(job.backend)
    staging = prepare_staging(job.output)
    runner, options = build_options(job.runner, job.workers, job.mode)
    p = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
    docs, rejected = build(p)
    docs, qc_rejected = quality_control(docs, web_files, job.dedup, job.decontam)
    schema = synth_schema(SYNTH_COLUMNS)
    write_output(docs, rejected + qc_rejected, staging, schema, job.docs_per_shard)
    start = time.time()
    result = p.run()
    result.wait_until_finish()
    usage = usage_from_metrics(result)
    info = {"generator": kind, "settings": settings, "backend": dataclasses.asdict(job.backend),
            "sampling": job.sampling.to_dict(), "cache_dir": job.resolved_cache(), "usage": usage,
            "seconds": round(time.time() - start, 3), "dedup": job.dedup, "dedup_against": job.dedup_against,
            "decontam": dataclasses.asdict(job.decontam) if job.decontam else None}
    counts = finish_output(job.output, staging, schema, info)
    coverage = write_coverage(job.output)
    return {**counts, "usage": usage, "coverage": os.path.join(job.output, STATS_DIR, "coverage.json"),
            "coverage_summary": coverage["totals"]}


def _page_requests(p, pages, make, label: str):
    """(requests, ledger parts) from web pages: Documents listed on the driver, or a shards folder read inside
    the pipeline (any number of pages; unreadable shards go to the ledger)."""
    if isinstance(pages, str):
        read = (p | f"{label}:files" >> beam.Create(input_shards(pages)) | f"{label}:spread" >> beam.Reshuffle()
                | f"{label}:read" >> beam.ParDo(ReadShardFn()).with_outputs(REJECTED, main="docs"))
        return read.docs | f"{label}:items" >> beam.FlatMap(lambda d: make([d])), [read[REJECTED]]
    return p | f"{label}:items" >> beam.Create(make(pages), reshuffle=False), []


def run_textbooks(job: GenerateJobConfig, cfg, topics: list[str] | None = None, pages: list | str | None = None) -> dict:
    """Textbook sections from topics (x audiences x styles) and/or web pages (Documents, or a shards folder
    read in the pipeline); outline mode when cfg.outline_sections > 0."""
    from synth import textbooks

    if not topics and not pages:
        raise ValueError("nothing to generate: give --topics FILE and/or --pages SHARDS")
    if isinstance(pages, str):
        input_shards(pages)  # fail now, on the driver, when the folder has no shards

    def build(p):
        parts, rejected = [], []
        if topics:
            parts.append(p | "topics:items" >> beam.Create(textbooks.topic_items(topics, cfg), reshuffle=False))
        if pages:
            page_reqs, unreadable = _page_requests(p, pages, lambda docs: textbooks.page_items(docs, cfg), "pages")
            parts.append(page_reqs)
            rejected += unreadable
        reqs = tuple(parts) | "items" >> beam.Flatten()
        if cfg.outline_sections:
            outlines, failed = answer(reqs, job.backend, job.sampling, job.resolved_cache(), job.batch_size, "outline")
            reqs, bad = apply_fn(outlines, lambda a: textbooks.section_items(a, cfg), "sections")
            rejected += [failed, bad]
        answers, failed = answer(reqs, job.backend, job.sampling, job.resolved_cache(), job.batch_size, "generate")
        docs, bad = apply_fn(answers, lambda a: textbooks.finish(a, cfg), "finish")
        return docs, rejected + [failed, bad]

    return _run(job, "textbook", build, dataclasses.asdict(cfg))


def run_exercises(job: GenerateJobConfig, cfg) -> dict:
    """Exercises: answer programs in the sandbox, then the model, then verification; failures to the ledger."""
    from synth import exercises
    from synth.sandbox import require_isolation

    require_isolation(cfg.limits)  # fail closed on the driver, before any model call, when runs cannot be isolated
    specs = exercises.make_specs(cfg)

    def build(p):
        spec_pc = p | "specs" >> beam.Create(specs) | "spread" >> beam.Reshuffle()
        items, bad_specs = apply_fn(spec_pc, lambda s: exercises.prepare(s, cfg), "prepare")
        answers, failed = answer(items, job.backend, job.sampling, job.resolved_cache(), job.batch_size, "generate")
        docs, bad = apply_fn(answers, lambda a: exercises.finish(a, cfg), "verify")
        return docs, [bad_specs, failed, bad]

    return _run(job, "exercise", build, dataclasses.asdict(cfg))


def run_rephrase(job: GenerateJobConfig, cfg, pages: list | str) -> dict:
    """Rewrites of web documents (Documents, or a shards folder read in the pipeline) in the chosen
    Nemotron-CC modes (parent: the web document)."""
    from synth import rephrase

    if isinstance(pages, str):
        input_shards(pages)  # fail now, on the driver, when the folder has no shards
    elif not pages:
        raise ValueError("nothing to rephrase: --pages has no documents")

    def build(p):
        reqs, unreadable = _page_requests(p, pages, lambda docs: rephrase.rephrase_items(docs, cfg), "pages")
        answers, failed = answer(reqs, job.backend, job.sampling, job.resolved_cache(), job.batch_size, "generate")
        docs, bad = apply_fn(answers, lambda a: rephrase.finish(a, cfg), "finish")
        return docs, [*unreadable, failed, bad]

    return _run(job, "rephrase", build, dataclasses.asdict(cfg))
