"""Beam RunInference ModelHandlers: score Documents with a saved classifier, one model per worker process,
in batches.

Examples are Documents; each PredictionResult carries the document and its float score (or, for a
document the model could not score, the error text, which the stage turns into a ledger record).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from assay.classifiers.artifact import ModelDirError, load_model, verify_model_dir
from assay.classifiers.base import TextClassifier
from assay.curation.document import Document


class DocumentScoreHandler(ModelHandler[Document, PredictionResult, TextClassifier]):
    """Loads a model directory (verified by its content hash) and scores batches of Documents."""

    kind = ""
    #: documents per model call at most (RunInference's max_batch_size) unless a stage sets max_batch_size; a
    #: bound on memory, not a measured optimum (docs/classifiers.md)
    default_max_batch = 256

    def __init__(self, model_dir: str, min_batch_size: int = 1, max_batch_size: int | None = None):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size or self.default_max_batch)
        self.model_dir = model_dir

    def load_model(self) -> TextClassifier:
        clf, metadata = load_model(self.model_dir)
        if self.kind and metadata["kind"] != self.kind:
            raise ModelDirError(f"{self.model_dir!r} holds a {metadata['kind']} model, not {self.kind}: "
                                "use handler_for(model_dir) to pick the handler from the metadata")
        return clf

    def run_inference(self, batch: Sequence[Document], model: TextClassifier,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        try:
            scores = model.score([doc.text for doc in batch])
        except Exception:  # find the document(s) at fault; the rest still get scores
            scores = []
            for doc in batch:
                try:
                    scores.append(float(model.score([doc.text])[0]))
                except Exception as exc:
                    scores.append(f"{type(exc).__name__}: {exc}")
        return [PredictionResult(doc, score if isinstance(score, str) else float(score), self.model_dir)
                for doc, score in zip(batch, scores)]

    def get_num_bytes(self, batch: Sequence[Document]) -> int:
        return sum(len(doc.text) for doc in batch)

    def get_metrics_namespace(self) -> str:
        return f"assay_classify_{self.kind or 'model'}"


class FastTextModelHandler(DocumentScoreHandler):
    kind = "fasttext"
    default_max_batch = 1024  # fastText holds no per-document activations: large batches cost little memory


class EncoderModelHandler(DocumentScoreHandler):
    kind = "encoder"
    default_max_batch = 64  # an encoder batch holds max_tokens x hidden activations per document


HANDLERS = {h.kind: h for h in (FastTextModelHandler, EncoderModelHandler)}


def handler_for(model_dir: str, max_batch_size: int | None = None) -> DocumentScoreHandler:
    """The handler for the model's kind; checks the directory now, so a bad path fails before the run."""
    metadata = verify_model_dir(model_dir)
    return HANDLERS[metadata["kind"]](model_dir, max_batch_size=max_batch_size)
