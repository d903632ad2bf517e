"""The classifier stage of `assay run`: score every document with a saved model (its RunInference model handler, batched after a GroupByKey so the same code runs on every Beam runner), put the
score into `doc.meta[column]`, and (mode "drop") send documents below the threshold to the ledger with the
score and threshold that decided them.

    [[stages]]  # in the run config, as the lead wires it
    model_dir = "models/edu-fasttext"
    column = "edu_cls"
    threshold = 0.5        # omit: the threshold `assay classify eval` wrote into the model's metadata
    mode = "drop"          # or "annotate": keep everything, only add the column
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.pvalue import TaggedOutput

from classifiers.artifact import verify_model_dir
from curation.document import Document, Rejection
from pipelines.job.beam_fns import REJECTED, Counters, utf8_len

MODES = ("drop", "annotate")


@dataclass
class ClassifierStageConfig:
    model_dir: str
    column: str
    threshold: float | None = None  # None: the threshold in the model's metadata
    mode: str = "drop"  # "drop" | "annotate"
    max_batch_size: int | None = None  # None: the handler's default for the model kind

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"classifier stage mode must be one of {MODES}, got {self.mode!r}")
        if not self.column or not self.column.isidentifier():
            raise ValueError(f"classifier column {self.column!r} must be a plain identifier such as edu_cls")

    @property
    def stage_name(self) -> str:
        return f"classify:{self.column}"


def resolve_threshold(cfg: ClassifierStageConfig) -> float | None:
    """The threshold the stage applies; a drop stage without one is a configuration error."""
    metadata = verify_model_dir(cfg.model_dir)
    threshold = cfg.threshold if cfg.threshold is not None else metadata.get("threshold")
    if threshold is None and cfg.mode == "drop":
        raise ValueError(f"model {cfg.model_dir!r} has no threshold in its metadata: run "
                         "`assay classify eval` on it, set `threshold`, or use mode = \"annotate\"")
    return None if threshold is None else float(threshold)


def classifier_stage_columns(cfg: ClassifierStageConfig) -> dict[str, pa.DataType]:
    """The signal column this stage adds (for the shard schema)."""
    return {cfg.column: pa.float64()}


class _Decide(beam.DoFn):
    """PredictionResult -> scored Document, or a Rejection (below threshold, or unscorable)."""

    def __init__(self, cfg: ClassifierStageConfig, threshold: float | None):
        self.cfg, self.threshold = cfg, threshold

    def setup(self) -> None:
        self.counters = Counters(self.cfg.stage_name)

    def process(self, result):
        doc: Document = result.example
        score = result.inference
        c, column = self.counters, self.cfg.column
        nbytes = utf8_len(doc.text)
        c.docs_in.inc()
        c.bytes_in.inc(nbytes)
        if isinstance(score, str):
            c.rejected("score_error", nbytes)
            yield TaggedOutput(REJECTED, Rejection.of(doc, self.cfg.stage_name, "score_error", detail=score))
            return
        if self.cfg.mode == "drop" and score < self.threshold:
            c.rejected("below_threshold", nbytes)
            yield TaggedOutput(REJECTED, Rejection.of(doc, self.cfg.stage_name, "below_threshold",
                                                      **{column: score, "threshold": self.threshold}))
            return
        c.docs_out.inc()
        c.bytes_out.inc(nbytes)
        yield doc.with_meta(**{column: score})


#: documents are spread over this many keys to be scored in batches (bounds one key's group)
SCORE_BUCKETS = 256


class _ScoreBatches(beam.DoFn):
    """(bucket, documents) -> PredictionResults, scored `max_batch_size` at a time with the RunInference
    handler, the model loaded once per DoFn instance. Batching after a GroupByKey, not with RunInference's
    BatchElements, because that emits its last batch from finish_bundle, which the DaskRunner drops."""

    def __init__(self, handler, batch_size: int):
        self.handler, self.batch_size = handler, batch_size
        self.model = None

    def setup(self) -> None:
        self.model = self.handler.load_model()

    def process(self, element):
        batch = []
        for doc in element[1]:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                yield from self.handler.run_inference(batch, self.model)
                batch = []
        if batch:
            yield from self.handler.run_inference(batch, self.model)


def _bucket(doc) -> tuple[int, object]:
    return zlib.crc32(doc.id.encode("utf-8")) % SCORE_BUCKETS, doc


def apply_classifier_stage(docs, cfg: ClassifierStageConfig):
    """docs (PCollection[Document]) -> (kept PCollection[Document], PCollection[Rejection])."""
    from classifiers.inference import handler_for
    from pipelines.job.beam_fns import split_outputs

    threshold = resolve_threshold(cfg)
    handler = handler_for(cfg.model_dir, max_batch_size=cfg.max_batch_size)
    batch_size = cfg.max_batch_size or handler.batch_elements_kwargs().get("max_batch_size", 64)
    outputs = (
        docs
        | f"{cfg.stage_name}|bucket" >> beam.Map(_bucket)
        | f"{cfg.stage_name}|batch" >> beam.GroupByKey()
        | f"{cfg.stage_name}|score" >> beam.ParDo(_ScoreBatches(handler, batch_size))
        | f"{cfg.stage_name}|decide" >> beam.ParDo(_Decide(cfg, threshold)).with_outputs(REJECTED, main="kept")
    )
    return split_outputs(outputs, cfg.stage_name)
