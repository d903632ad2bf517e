"""Classifier scoring in Beam: every document scored with a saved model (its RunInference model handler,
batched after a GroupByKey so the same code runs on every Beam runner), the score put into
`doc.meta[column]`, and (mode "drop") documents below the threshold sent to the ledger with the score and
threshold that decided them. What to score with is assay/classifiers/scoring.py's ClassifierStageConfig.
"""
from __future__ import annotations

import zlib

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from assay.classifiers.scoring import ClassifierStageConfig, resolve_threshold
from assay.curation.document import Document, Rejection
from assay.pipelines.job.beam_fns import REJECTED, Counters, split_outputs, utf8_len


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
        c.seen(nbytes)
        if isinstance(score, str):
            c.rejected("score_error", nbytes)
            yield TaggedOutput(REJECTED, Rejection.of(doc, self.cfg.stage_name, "score_error", detail=score))
            return
        if self.cfg.mode == "drop" and score < self.threshold:
            c.rejected("below_threshold", nbytes)
            yield TaggedOutput(REJECTED, Rejection.of(doc, self.cfg.stage_name, "below_threshold",
                                                      **{column: score, "threshold": self.threshold}))
            return
        c.kept(nbytes)
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
    from assay.classifiers.inference import handler_for

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
