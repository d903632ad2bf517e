"""`assay synth textbooks|exercises|rephrase`: generation as ShardJobs.

    requests (PromptItems) -> batches -> one model per worker (through the request cache) -> Documents
      -> dedup (exact + MinHash, against each other and optional web shards) -> decontamination
      -> OUT/docs/*.parquet, OUT/rejected/*.parquet (ledger), OUT/run.json (with tokens and time per backend),
         OUT/stats/{funnel,coverage}.json
Exercises first run their answer programs in the sandbox; outline mode answers outlines, then sections.
The request cache (default OUT/cache) survives reruns: after a kill, a rerun generates only what is missing.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from assay.curation.decontam import DecontamConfig, DecontamStage
from assay.curation.document import Document
from assay.groundwork.config import to_dict
from assay.pipelines.job.runner import RunnerConfig
from assay.pipelines.job.shard_job import ShardJob
from assay.pipelines.job.sources import AllOf, DocumentShards, Items, Piped, Source
from assay.pipelines.job.steps import Dedup, MapElements, PerDocument, Step
from assay.pipelines.synth_jobs.steps import AnswerRequests, usage_report
from assay.synth.config import BackendConfig, Sampling
from assay.synth.items import SYNTH_COLUMNS, PromptItem, generator_stage
from assay.synth.sandbox.isolation import SandboxUnavailable


@dataclass
class GenerateJobConfig:
    """The settings every generator's job shares: model, sampling, cache, quality control and output."""

    output: str  # the output folder: docs/, rejected/ (the ledger), stats/, run.json, cache/
    backend: BackendConfig  # the model that generates (assay/synth/backends/)
    sampling: Sampling = field(default_factory=Sampling)  # the decoding parameters of every request
    cache_dir: str | None = None  # default: OUTPUT/cache
    dedup: bool = True  # drop exact and MinHash near-duplicates among the generated documents
    dedup_against: str | None = None  # web shards (an `assay run` output) to dedup generated text against
    #: the n-gram decontamination against evaluation sets; None skips it
    decontam: DecontamConfig | None = field(default_factory=DecontamConfig)
    #: one worker by default: each worker loads its own model
    runner: RunnerConfig = field(default_factory=lambda: RunnerConfig(workers=1))
    docs_per_shard: int = 20_000  # generated documents per Parquet shard of docs/

    def resolved_cache(self) -> str:
        return self.cache_dir or os.path.join(os.path.abspath(self.output), "cache")


def _step(fn, stage: str, output_type=Document) -> MapElements:
    """A generator's own function as a step; a sandbox that cannot isolate stops the run (fails closed)."""
    return MapElements(fn, generator_stage(stage), fatal=(SandboxUnavailable,), output_type=output_type)


def _answer(job: GenerateJobConfig, label: str = "generate") -> AnswerRequests:
    return AnswerRequests(job.backend, job.sampling, job.resolved_cache(), label)


def _pages(pages: list | str, make) -> Source:
    """Requests from web pages: Documents listed on the driver, or a shards folder read inside the pipeline
    (any number of pages; unreadable shards go to the ledger)."""
    if isinstance(pages, str):
        return Piped(DocumentShards(pages, label="pages:read"),
                     _step(lambda doc: make([doc]), "pages", output_type=PromptItem))
    return Items(make(pages), label="pages:items", item_type=PromptItem)


def quality_steps(dedup: bool, web_files: list[str], decontam: DecontamConfig | None) -> list[Step]:
    """The quality control every generator's output goes through: curation's exact + MinHash dedup (against
    each other and the documents of `web_files`, which are never output), then n-gram decontamination."""
    return ([Dedup(reference_files=web_files)] if dedup else []) + (
        [PerDocument(DecontamStage(decontam))] if decontam is not None else [])


def _run(job: GenerateJobConfig, kind: str, source: Source, steps: list[Step], settings: dict) -> dict:
    """Run a generator's job with the shared quality control, write the coverage report, return the counts."""
    from assay.curation.shards import STATS_DIR, document_shards
    from assay.synth.backends import check_backend_config
    from assay.synth.coverage import write_coverage

    web_files = document_shards(job.dedup_against) if job.dedup_against else []
    check_backend_config(job.backend)
    quality = quality_steps(job.dedup, web_files, job.decontam)
    record = {"generator": kind, "settings": settings, "backend": to_dict(job.backend),
              "sampling": job.sampling.to_dict(), "cache_dir": job.resolved_cache(), "dedup": job.dedup,
              "dedup_against": job.dedup_against, "decontam": to_dict(job.decontam) if job.decontam else None}
    result = ShardJob(f"synth-{kind}", source, steps + quality, job.output, job.runner, settings=record,
                      columns=SYNTH_COLUMNS, docs_per_shard=job.docs_per_shard, report=usage_report).run(False)
    coverage = write_coverage(job.output)
    return {**result.counts, "usage": result.record["usage"],
            "coverage": os.path.join(job.output, STATS_DIR, "coverage.json"), "coverage_summary": coverage["totals"]}


def run_textbooks(job: GenerateJobConfig, cfg, topics: list[str] | None = None,
                  pages: list | str | None = None) -> dict:
    """Textbook sections from topics (x audiences x styles) and/or web pages (Documents, or a shards folder
    read in the pipeline); outline mode when cfg.outline_sections > 0."""
    from assay.synth import textbooks

    if not topics and not pages:
        raise ValueError("nothing to generate: give --topics FILE and/or --pages SHARDS")
    source = AllOf(Items(textbooks.topic_items(topics, cfg), label="topics:items", item_type=PromptItem)
                   if topics else None,
                   _pages(pages, lambda docs: textbooks.page_items(docs, cfg)) if pages else None)
    steps: list[Step] = []
    if cfg.outline_sections:
        steps += [_answer(job, "outline"), _step(lambda a: textbooks.section_items(a, cfg), "sections", PromptItem)]
    steps += [_answer(job), _step(lambda a: textbooks.finish(a, cfg), "finish")]
    return _run(job, "textbook", source, steps, dataclasses.asdict(cfg))


def run_exercises(job: GenerateJobConfig, cfg) -> dict:
    """Exercises: answer programs in the sandbox, then the model, then verification; failures to the ledger."""
    from assay.synth import exercises
    from assay.synth.sandbox import require_isolation

    require_isolation(cfg.limits)  # fail closed on the driver, before any model call, when runs cannot be isolated
    source = Items(exercises.make_specs(cfg), label="specs", spread=True)
    steps = [_step(lambda s: exercises.prepare(s, cfg), "prepare", PromptItem), _answer(job),
             _step(lambda a: exercises.finish(a, cfg), "verify")]
    return _run(job, "exercise", source, steps, dataclasses.asdict(cfg))


def run_rephrase(job: GenerateJobConfig, cfg, pages: list | str) -> dict:
    """Rewrites of web documents (Documents, or a shards folder read in the pipeline) in the chosen
    Nemotron-CC modes (parent: the web document)."""
    from assay.synth import rephrase

    if not isinstance(pages, str) and not pages:
        raise ValueError("nothing to rephrase: --pages has no documents")
    source = _pages(pages, lambda docs: rephrase.rephrase_items(docs, cfg))
    steps = [_answer(job), _step(lambda a: rephrase.finish(a, cfg), "finish")]
    return _run(job, "rephrase", source, steps, dataclasses.asdict(cfg))
