"""The contract every per-document step follows, so one Beam adapter can run them all.

A stage loads what it needs once per worker (`setup`), then maps one Document to either a Document
(kept, perhaps with new text or signals) or a Rejection (dropped, with its reason). It declares the
signal columns it adds, so every shard of a run has the same schema.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pyarrow as pa

from curation.document import Document, Rejection


class Stage(ABC):
    name: ClassVar[str] = "stage"

    def setup(self) -> None:
        """Load models and build helpers; called once per worker before any document."""

    @property
    def columns(self) -> dict[str, pa.DataType]:
        """Signal columns this stage adds to kept documents."""
        return {}

    @abstractmethod
    def process(self, doc: Document) -> Document | Rejection: ...

    def __call__(self, doc: Document) -> Document | Rejection:
        return self.process(doc)
