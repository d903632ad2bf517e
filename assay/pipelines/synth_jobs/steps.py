"""The LLM steps of the synthetic-data jobs: answering generation requests and scoring rubric labels, each on
one model per worker through the request cache, and the per-backend usage (requests, tokens, cache hits,
seconds) summed from Beam counters for run.json.
"""
from __future__ import annotations

import json
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from assay.curation.document import Document, Rejection
from assay.pipelines.job.beam_fns import REJECTED, Counters, split_outputs, utf8_len
from assay.pipelines.job.steps import Step, StepContext
from assay.synth.config import BackendConfig, Sampling
from assay.synth.items import Answer, generator_stage

#: the counted fields of a backend's Usage (assay/synth/backends/base.py), summed across workers
USAGE_FIELDS = ("requests", "tokens_in", "tokens_out", "cache_hits")
#: Beam counter namespace of LLM usage ("synth|<backend kind>|<field>"), apart from the funnel's counters
USAGE_NAMESPACE = "assay_llm_usage"


class _BackendFn(beam.DoFn):
    """A DoFn holding this worker's one loaded model and the request cache, counting its usage."""

    def __init__(self, backend: BackendConfig, cache_dir: str | None, stage: str):
        self.backend_cfg, self.cache_dir, self.stage = backend, cache_dir, stage

    def setup(self) -> None:
        from assay.synth.backends import shared_backend
        from assay.synth.cache import RequestCache

        self.backend = shared_backend(self.backend_cfg)
        self.cache = RequestCache(self.cache_dir)
        prefix = f"synth|{self.backend.kind}"
        self.usage = {f: Metrics.counter(USAGE_NAMESPACE, f"{prefix}|{f}") for f in USAGE_FIELDS}
        self.millis = Metrics.counter(USAGE_NAMESPACE, f"{prefix}|millis")
        self.counters = Counters(self.stage)

    def count_usage(self, before: dict, start: float) -> None:
        after = self.backend.usage.to_dict()
        for f in USAGE_FIELDS:
            self.usage[f].inc(after[f] - before[f])
        self.millis.inc(int((time.perf_counter() - start) * 1000))


class AnswerFn(_BackendFn):
    """Batches of PromptItems -> Answers; a request the backend cannot answer goes to the ledger, a backend
    that is down stops the run (a rerun resumes from the cache)."""

    def __init__(self, backend: BackendConfig, sampling: Sampling, cache_dir: str | None, stage: str):
        super().__init__(backend, cache_dir, stage)
        self.sampling = sampling

    def process(self, batch):
        from assay.synth.backends.base import BackendUnavailable
        from assay.synth.runner import answer_items

        batch = list(batch)
        before, start = self.backend.usage.to_dict(), time.perf_counter()
        self.counters.seen(docs=len(batch))
        try:
            answers = answer_items(self.backend, batch, self.sampling, self.cache)
        except BackendUnavailable:
            raise  # nothing can be answered: stop; a rerun resumes from the cache
        except Exception:  # some request is bad: answer one by one, ledger the ones that fail
            answers = []
            for item in batch:
                try:
                    answers += answer_items(self.backend, [item], self.sampling, self.cache)
                except BackendUnavailable:
                    raise
                except Exception as exc:
                    self.counters.rejected("generation_error", 0)
                    yield TaggedOutput(REJECTED, Rejection(
                        stage=self.stage, reason="generation_error", id=item.id, source=generator_stage(item.generator),
                        detail=f"{type(exc).__name__}: {exc}", signals=dict(item.labels, template_id=item.template_id),
                        text=json.dumps(item.messages, ensure_ascii=False)))
        self.count_usage(before, start)
        self.counters.kept(docs=len(answers))
        yield from answers


class AnnotateFn(_BackendFn):
    """Batches of Documents -> the same Documents with rubric score columns (None where unscored)."""

    def __init__(self, backend: BackendConfig, rubric, cache_dir: str | None, stage: str):
        super().__init__(backend, cache_dir, stage)
        self.rubric = rubric

    def setup(self) -> None:
        super().setup()
        self.unscored = Metrics.counter(USAGE_NAMESPACE, "annotate|unscored")

    def process(self, batch):
        from assay.synth.rubric import annotate

        batch = list(batch)
        before, start = self.backend.usage.to_dict(), time.perf_counter()
        docs = annotate(self.backend, batch, self.rubric, self.cache)
        self.count_usage(before, start)
        for doc in docs:
            self.counters.passed(utf8_len(doc.text))
            if any(doc.meta.get(name) is None for name in self.rubric.rubrics):
                self.unscored.inc()
            yield doc


class AnswerRequests(Step):
    """PromptItems -> Answers from the backend in batches of its batch_size (one model per worker)."""

    def __init__(self, backend: BackendConfig, sampling: Sampling, cache_dir: str | None, label: str = "generate"):
        self.backend, self.sampling, self.cache_dir, self.label = backend, sampling, cache_dir, label
        self.names = (generator_stage(label),)

    def expand(self, items, ctx: StepContext):
        fn = AnswerFn(self.backend, self.sampling, self.cache_dir, self.names[0])
        out = (items
               | f"{self.label}:batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.backend.batch_size)
               | f"{self.label}:answer" >> beam.ParDo(fn).with_outputs(REJECTED, main="answers"))
        answers, failed = split_outputs(out, self.label, main="answers", main_type=Answer)
        return answers, [failed]


class ScoreRubrics(Step):
    """Documents -> the same Documents with a 0-5 score column per rubric (assay/synth/rubric.py)."""

    def __init__(self, backend: BackendConfig, rubric, cache_dir: str | None):
        from assay.synth.rubric import rubric_columns

        self.backend, self.rubric, self.cache_dir = backend, rubric, cache_dir
        self.names = (generator_stage("annotate"),)
        self.columns = rubric_columns(rubric)

    def expand(self, docs, ctx: StepContext):
        scored = (docs
                  | "annotate:batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.backend.batch_size)
                  | "annotate" >> beam.ParDo(AnnotateFn(self.backend, self.rubric, self.cache_dir, self.names[0]))
                  .with_output_types(Document))
        return scored, []


def usage_report(result) -> dict[str, dict]:
    """{"usage": {backend kind: requests, tokens in/out, cache hits, seconds, tokens out per second}}, summed
    over all workers from the Beam counters the LLM steps keep."""
    from apache_beam.metrics.metric import MetricsFilter

    usage: dict[str, dict] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(USAGE_NAMESPACE))["counters"]:
        parts = counter.key.metric.name.split("|")
        if len(parts) != 3 or parts[0] != "synth":
            continue
        entry = usage.setdefault(parts[1], {f: 0 for f in (*USAGE_FIELDS, "millis")})
        entry[parts[2]] = entry.get(parts[2], 0) + int(counter.committed or counter.attempted or 0)
    for entry in usage.values():
        entry["seconds"] = round(entry.pop("millis") / 1000, 3)
        entry["tokens_out_per_s"] = round(entry["tokens_out"] / entry["seconds"], 3) if entry["seconds"] else 0.0
    return {"usage": usage}
