"""A generation request with its provenance, and how a finished request becomes a Document.

Every generator (textbooks, exercises, rephrasing) turns its inputs into PromptItems; the runner answers
them (through the request cache); the generator's `finish` turns the answer into a Document or a Rejection.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from assay.curation.document import Document, Rejection, stable_id
from assay.synth.backends.base import Completion, Messages
from assay.synth.config import Sampling
from assay.synth.templates import Template

#: Signal columns of synthetic document shards (provenance plus generator labels). Missing ones are null.
SYNTH_COLUMNS: dict[str, pa.DataType] = {
    "generator": pa.string(),
    "template_id": pa.string(),
    "template_hash": pa.string(),
    "model": pa.string(),
    "backend": pa.string(),
    "sampling": pa.string(),  # JSON of the Sampling parameters
    "seed": pa.int64(),
    "parent_id": pa.string(),
    "request_key": pa.string(),
    "tokens_in": pa.int64(),
    "tokens_out": pa.int64(),
    "finish_reason": pa.string(),
    "topic": pa.string(),
    "audience": pa.string(),
    "style": pa.string(),
    "mode": pa.string(),
    "exercise_kind": pa.string(),
    "answer": pa.string(),
    "verification": pa.string(),
    "sandbox_isolation": pa.string(),  # the layers in force when the answer was computed (UNSAFE_... if opted out)
    "sections": pa.int64(),
}

SOURCE_PREFIX = "synth"


def generator_stage(generator: str) -> str:
    """A generator's name in the funnel, the ledger and its documents' `source`: "synth:<generator>"."""
    return f"{SOURCE_PREFIX}:{generator}"


def rejected(generator: str, item_id: str, reason: str, detail: str, text: str = "",
             signals: dict[str, Any] | None = None) -> Rejection:
    """A generator's ledger record of one request or exercise it drops, with the signals behind the decision."""
    stage = generator_stage(generator)
    return Rejection(stage=stage, reason=reason, id=item_id, source=stage, detail=detail, text=text,
                     signals=dict(signals or {}))


@dataclass
class PromptItem:
    """One request. `labels` become document columns; `payload` is private to the generator."""

    id: str  # stable: a hash of generator, template, seed, parent and messages
    generator: str  # "textbook", "exercise", "rephrase", ...
    template_id: str  # the prompt template's id (assay/synth/templates.py)
    template_hash: str  # its text's hash: a changed template makes new items
    messages: Messages  # the chat messages sent
    seed: int  # the sampling seed of this request
    parent_id: str = ""  # the document or item it was made from, if any
    labels: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, generator: str, template: Template, seed: int, parent_id: str = "",
              labels: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
              **fields: str) -> "PromptItem":
        messages = template.render(**fields)
        item_id = stable_id(SOURCE_PREFIX, generator, template.id, template.hash, str(seed), parent_id,
                            json.dumps(messages, sort_keys=True))
        return cls(item_id, generator, template.id, template.hash, messages, seed, parent_id,
                   dict(labels or {}), dict(payload or {}))


@dataclass
class Answer:
    """A PromptItem with its completion and where the completion came from."""

    item: PromptItem  # the request
    completion: Completion  # the model's answer
    model: str  # the model that answered
    backend: str  # the backend kind that ran it
    sampling: Sampling  # the sampling parameters used
    request_key: str  # the request cache key (assay/synth/cache.py)
    cached: bool = False  # True when read from the request cache


def to_document(answer: Answer, text: str, **extra: Any) -> Document:
    """The provenance every synthetic document carries, plus generator-specific columns."""
    item, comp = answer.item, answer.completion
    meta = {"generator": item.generator, "template_id": item.template_id, "template_hash": item.template_hash,
            "model": answer.model, "backend": answer.backend,
            "sampling": json.dumps(answer.sampling.to_dict(), sort_keys=True), "seed": item.seed,
            "parent_id": item.parent_id or None, "request_key": answer.request_key,
            "tokens_in": comp.tokens_in, "tokens_out": comp.tokens_out, "finish_reason": comp.finish_reason}
    meta.update({k: v for k, v in item.labels.items() if k in SYNTH_COLUMNS})
    meta.update(extra)
    return Document(id=item.id, text=text, source=f"{SOURCE_PREFIX}:{item.generator}", meta=meta)
