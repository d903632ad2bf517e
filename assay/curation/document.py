"""The one record type every stage passes along, and the ledger record for what a stage drops.

Defined once here; readers, filters, classifiers, generators and the pipelines all import it.
A Document carries its text plus `meta`: every signal a stage computed (language, filter statistics,
dedup cluster, classifier scores, provenance), which become Parquet columns when the shard is written.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import pyarrow as pa

#: Fixed columns of a document shard, before the per-stage signal columns.
DOC_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(),
    "text": pa.string(),
    "source": pa.string(),
    "url": pa.string(),
    "domain": pa.string(),
    "date": pa.string(),
}

#: Columns of the ledger (rejected / quarantined records).
LEDGER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("signals", pa.string()),  # JSON object: the values that decided the drop
        ("text", pa.string()),  # the text (or a prefix of it) so nothing is silently lost
        ("text_chars", pa.int64()),  # full length of the text, even when `text` holds a prefix
    ]
)

#: Ledger rows keep at most this much text when asked for the full text; `text_chars` keeps the real length.
LEDGER_TEXT_LIMIT = 200_000
#: a ledger row's `detail` (the human-readable why) keeps at most this many characters
LEDGER_DETAIL_LIMIT = 2000
#: ...and by default an excerpt of this many characters: enough to see what the page was, without storing the
#: crawl a second time (the ledger of a web crawl is mostly dropped pages)
LEDGER_EXCERPT_CHARS = 500
#: the views of a document's text a stage can judge (Document.view)
#: the views of a document a stage may judge: its whole text, or its prose (no code blocks or tables)
TextView = Literal["text", "prose"]
TEXT_VIEWS = get_args(TextView)
#: below this much prose a page is judged on all of its text (a page that is nearly all code)
MIN_PROSE_CHARS = 200


@dataclass
class Document:
    """A unit of text on its way through curation.

    `mime` says what `text` holds: "text/html" until extraction turns it into "text/plain".
    """

    id: str
    text: str
    source: str = ""
    url: str = ""
    date: str = ""
    mime: str = "text/plain"
    meta: dict[str, Any] = field(default_factory=dict)
    #: the text without its code blocks and tables, set by extraction when it knows them: what language ID and
    #: the prose-view filters judge (code and tables are what documentation is made of, and web-text rules
    #: punish them). Never written to shards; None means "judge `text`".
    prose: str | None = field(default=None, repr=False, compare=False)

    @property
    def domain(self) -> str:
        return domain_of(self.url)

    def view(self, name: str) -> str:
        """The text a stage judges: "text" (all of it) or "prose" (without code blocks and tables, when
        extraction found at least MIN_PROSE_CHARS of prose; else all of it)."""
        if name == "text":
            return self.text
        if name != "prose":
            raise ValueError(f"unknown text view {name!r}; choose from {TEXT_VIEWS}")
        if self.prose is None or len(self.prose) < MIN_PROSE_CHARS:
            return self.text
        return self.prose

    def with_text(self, text: str, mime: str | None = None, prose: str | None = None) -> "Document":
        """A copy with new text (stages never mutate their input: Beam may reuse it); its prose view is
        `prose` (None: unknown for the new text)."""
        return Document(self.id, text, self.source, self.url, self.date, mime or self.mime, dict(self.meta), prose)

    def with_meta(self, **signals: Any) -> "Document":
        meta = dict(self.meta)
        meta.update(signals)
        return Document(self.id, self.text, self.source, self.url, self.date, self.mime, meta, self.prose)

    def without_prose(self) -> "Document":
        """The same document without its transient prose view (before a shuffle: it is never written)."""
        if self.prose is None:
            return self
        return Document(self.id, self.text, self.source, self.url, self.date, self.mime, self.meta)

    def to_row(self) -> dict[str, Any]:
        row = {"id": self.id, "text": self.text, "source": self.source, "url": self.url,
               "domain": self.domain, "date": self.date}
        row.update(self.meta)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Document":
        meta = {k: v for k, v in row.items() if k not in DOC_COLUMNS}
        return cls(id=str(row["id"]), text=row.get("text") or "", source=row.get("source") or "",
                   url=row.get("url") or "", date=row.get("date") or "", meta=meta)


@dataclass
class Rejection:
    """A record a stage dropped or could not read, with the reason and the signals behind the decision."""

    stage: str
    reason: str
    id: str = ""
    source: str = ""
    url: str = ""
    detail: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    text: str | None = None

    @classmethod
    def of(cls, doc: Document, stage: str, reason: str, detail: str = "", **signals: Any) -> "Rejection":
        merged = dict(doc.meta)
        merged.update(signals)
        return cls(stage=stage, reason=reason, id=doc.id, source=doc.source, url=doc.url,
                   detail=detail, signals=merged, text=doc.text)

    def to_row(self, text_limit: int = LEDGER_TEXT_LIMIT) -> dict[str, Any]:
        """The ledger row; `text` keeps at most `text_limit` characters (LEDGER_EXCERPT_CHARS for an excerpt)."""
        text = self.text
        return {
            "id": self.id,
            "source": self.source,
            "url": self.url,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail[:LEDGER_DETAIL_LIMIT],
            "signals": json.dumps(self.signals, sort_keys=True, default=_json_default),
            "text": None if text is None else text[:text_limit],
            "text_chars": None if text is None else len(text),
        }


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def domain_of(url: str) -> str:
    if not url:
        return ""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
    """Case-folded, accent-stripped, punctuation-free, whitespace-collapsed text.

    Used for exact-duplicate hashes and for splitting labelled data by content, so that
    trivially different copies land together.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _PUNCT.sub(" ", text.casefold())
    return _SPACE.sub(" ", text).strip()


def content_hash(text: str) -> str:
    """Hex digest of the normalized text (stable across runs and machines)."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).hexdigest()


def stable_id(*parts: str) -> str:
    """A deterministic document id from identifying parts (source, record offset, url...)."""
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()
