"""The contract every per-document step follows, so one Beam adapter can run them all.

A stage loads what it needs once per worker (`setup`), then maps one Document to either a Document
(kept, perhaps with new text or signals) or a Rejection (dropped, with its reason). It declares the
signal columns it adds, so every shard of a run has the same schema. `process_limited` is how runners call
it: under a time limit per document, a document past it becoming a "timeout" Rejection.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pyarrow as pa

from assay.curation.document import Document, Rejection
from assay.curation.timelimit import call_with_time_limit


class Stage(ABC):
    name: ClassVar[str] = "stage"
    #: this stage's own seconds per document (0 = none), and the config key that sets it; None = the runner's
    time_limit_s: float | None = None
    time_limit_key: str = "runner.stage_timeout_s"

    def setup(self) -> None:  # noqa: B027 (an optional hook)
        """Load models and build helpers; called once per worker before any document."""

    @property
    def columns(self) -> dict[str, pa.DataType]:
        """Signal columns this stage adds to kept documents."""
        return {}

    @abstractmethod
    def process(self, doc: Document) -> Document | Rejection: ...

    def __call__(self, doc: Document) -> Document | Rejection:
        return self.process(doc)

    def timeout_signals(self, doc: Document) -> dict:
        """Signals a "timeout" Rejection of `doc` carries (what the stage would have recorded up front)."""
        return {}

    def process_limited(self, doc: Document, default_limit_s: float = 0.0) -> Document | Rejection:
        """`process` under this stage's time limit (or `default_limit_s`, the runner's): a document still being
        processed when it runs out goes to the ledger as "timeout", and the worker moves on."""
        own = self.time_limit_s is not None
        limit = self.time_limit_s if own else default_limit_s
        try:
            return call_with_time_limit(limit, self.process, doc)
        except TimeoutError:
            key = self.time_limit_key if own else Stage.time_limit_key
            return Rejection.of(doc, self.name, "timeout", **self.timeout_signals(doc),
                                detail=f"{self.name} took longer than {key} = {limit:g} s on this document; "
                                       "raise it to keep such documents")
