"""The steps of a ShardJob. A step takes a PCollection (documents, or a generator's work items) and returns
what it keeps plus the ledger records of what it drops; it names its stages for the funnel and the signal
columns it adds to kept documents, so a job's shard schema and funnel follow from its list of steps.

    PerDocument   curation Stages (extract, langid, filters, PII, decontamination, ...), fused into one DoFn
    Dedup         exact + MinHash dedup over the whole collection, optionally against reference shards
    Classify      a saved classifier's score column, dropping below its threshold (mode "drop")
    MapElements   any function element -> Document | Rejection | list of them (a generator's steps)

A new kind of whole-collection step is a subclass with `expand`; a new per-document stage needs no new step,
only a curation Stage.
"""
from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import apache_beam as beam
import pyarrow as pa
from apache_beam.pvalue import TaggedOutput

from assay.curation.dedup import EXACT_DEDUP, FUZZY_DEDUP, MinHashConfig
from assay.curation.document import Document, Rejection
from assay.curation.stage import Stage
from assay.pipelines.job.beam_fns import REJECTED, Counters, StageChainFn, split_outputs, utf8_len
from assay.synth.items import generator_stage


@dataclass
class StepContext:
    """What the job gives every step when it builds the pipeline."""

    progress_dir: str | None = None  # local runs: where per-worker heartbeats go (the live progress view)
    stage_timeout_s: float = 0.0  # per document and per-document stage; 0 = none


class Step(ABC):
    """elements -> (kept, [ledger records]). `names`: its stages, in order, as the funnel shows them;
    `columns`: the signal columns it adds to kept documents."""

    names: tuple[str, ...] = ()
    columns: dict[str, pa.DataType] = {}

    @abstractmethod
    def expand(self, pcoll, ctx: StepContext):
        """(kept PCollection, [PCollections of Rejections])"""


class PerDocument(Step):
    """Curation Stages run one after another on each document, in one DoFn (one Beam hop for the chain);
    adjacent PerDocument steps of a job are fused into one."""

    def __init__(self, *stages: Stage):
        if not stages:
            raise ValueError("PerDocument needs at least one stage")
        self.stages = list(stages)
        self.names = tuple(stage.name for stage in self.stages)
        self.columns = {k: v for stage in self.stages for k, v in stage.columns.items()}

    def then(self, other: "PerDocument") -> "PerDocument":
        return PerDocument(*self.stages, *other.stages)

    def expand(self, docs, ctx: StepContext):
        label = "stages:" + "+".join(self.names)
        fn = StageChainFn(self.stages, ctx.progress_dir, ctx.stage_timeout_s)
        out = docs | label >> beam.ParDo(fn).with_outputs(REJECTED, main="kept")
        kept, dropped = split_outputs(out, label)
        return kept, [dropped]


class Dedup(Step):
    """Exact (normalized content hash) then MinHash-LSH dedup, global over the collection; documents of
    `reference_files` join as references only (assay/pipelines/job/dedup.py)."""

    def __init__(self, exact: bool = True, fuzzy: bool = True, minhash: MinHashConfig | None = None,
                 reference_files: list[str] | None = None):
        from assay.pipelines.job.dedup import EXACT_COLUMNS, FUZZY_COLUMNS

        self.exact, self.fuzzy, self.minhash = exact, fuzzy, minhash or MinHashConfig()
        self.reference_files = list(reference_files or [])
        self.names = tuple(n for n, on in ((EXACT_DEDUP, exact), (FUZZY_DEDUP, fuzzy)) if on)
        self.columns = {**(EXACT_COLUMNS if exact else {}), **(FUZZY_COLUMNS if fuzzy else {})}

    def expand(self, docs, ctx: StepContext):
        from assay.pipelines.job.dedup import dedup

        return dedup(docs, self.exact, self.fuzzy, self.minhash, self.reference_files)


class Classify(Step):
    """A saved classifier's score as a column; in mode "drop", documents below the threshold go to the ledger."""

    def __init__(self, cfg):  # assay.classifiers.scoring.ClassifierStageConfig
        self.cfg = cfg
        self.names = (cfg.stage_name,)
        self.columns = {cfg.column: pa.float64()}

    def expand(self, docs, ctx: StepContext):
        from assay.pipelines.job.classifier_scores import apply_classifier_stage

        kept, dropped = apply_classifier_stage(docs, self.cfg)
        return kept, [dropped]


@dataclass
class MapElements(Step):
    """`fn(element)` -> a Document, a Rejection, or a list of them, for each element: a generator's work item
    turned into a request, an answer into a document. An exception on one element becomes its ledger record
    ("stage_error"), not the end of the run, unless it is one of `fatal` (e.g. a sandbox that cannot isolate
    model-written code: the run stops). `output_type`: what kept elements are (Document unless they are the
    next step's work items)."""

    fn: Callable[[Any], Any]
    stage: str
    fatal: tuple[type[BaseException], ...] = ()
    output_type: Any = Document
    columns: dict[str, pa.DataType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = (self.stage,)

    def expand(self, pcoll, ctx: StepContext):
        out = (pcoll | f"{self.stage}:map" >> beam.ParDo(_MapFn(self.fn, self.stage, self.fatal))
               .with_outputs(REJECTED, main="kept"))
        kept, rejected = split_outputs(out, self.stage, main_type=self.output_type)
        return kept, [rejected]


class _MapFn(beam.DoFn):
    def __init__(self, fn, stage: str, fatal: tuple):
        self.fn, self.stage, self.fatal = fn, stage, fatal

    def setup(self) -> None:
        self.counters = Counters(self.stage)

    def process(self, element):
        c = self.counters
        c.seen(utf8_len(getattr(element, "text", None)))
        try:
            out = self.fn(element)
        except self.fatal:
            raise
        except Exception as exc:
            element_id, source = element_identity(element)
            out = Rejection(stage=self.stage, reason="stage_error", id=element_id, source=source,
                            detail=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        for item in out if isinstance(out, list) else [out]:
            if isinstance(item, Rejection):
                c.rejected(item.reason, utf8_len(item.text))
                yield TaggedOutput(REJECTED, item)
            else:
                c.kept(utf8_len(getattr(item, "text", None)))
                yield item


def element_identity(element) -> tuple[str, str]:
    """(id, source) to file a failed element's ledger record under: a document's own, or for a generator's
    work item (an Answer, a PromptItem, an exercise spec) its id and "synth:<generator>"."""
    if isinstance(element, Document):
        return element.id, element.source
    item = getattr(element, "item", element)
    return str(getattr(item, "id", "")), generator_stage(getattr(item, "generator", getattr(item, "kind", "")))
