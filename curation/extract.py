"""Main-text extraction from HTML with trafilatura (resiliparse when installed and asked for).

Boilerplate (navigation, footers, cookie banners) is what makes web text bad training data; extraction
keeps the article body. A page with nothing left is rejected as "empty" rather than passed on blank.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curation.document import Document, Rejection
from curation.stage import Stage


@dataclass
class ExtractConfig:
    engine: str = "trafilatura"  # or "resiliparse" (if installed)
    include_tables: bool = True
    include_comments: bool = False
    favor_precision: bool = False
    min_chars: int = 1  # a page with less extracted text than this is rejected as "empty"


class ExtractText(Stage):
    name = "extract"

    def __init__(self, cfg: ExtractConfig | None = None):
        self.cfg = cfg or ExtractConfig()
        if self.cfg.engine not in ("trafilatura", "resiliparse"):
            raise ValueError(f"extract.engine must be 'trafilatura' or 'resiliparse', got {self.cfg.engine!r}")
        self._extract = None

    def setup(self) -> None:
        if self.cfg.engine == "resiliparse":
            try:
                from resiliparse.extract.html2text import extract_plain_text
            except ImportError as exc:  # pragma: no cover - depends on the optional package
                raise RuntimeError("extract.engine = 'resiliparse' needs `pip install resiliparse`") from exc
            self._extract = lambda html: extract_plain_text(html, main_content=True)
        else:
            import trafilatura

            cfg = self.cfg

            def run(html: str) -> str:
                return trafilatura.extract(
                    html,
                    include_tables=cfg.include_tables,
                    include_comments=cfg.include_comments,
                    favor_precision=cfg.favor_precision,
                    deduplicate=False,
                    with_metadata=False,
                ) or ""

            self._extract = run

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {"html_chars": pa.int64()}

    def process(self, doc: Document) -> Document | Rejection:
        if self._extract is None:
            self.setup()
        if doc.mime != "text/html":
            text = doc.text.strip()
            html_chars = None
        else:
            html_chars = len(doc.text)
            text = self._extract(doc.text).strip() if doc.text.strip() else ""
        if len(text) < self.cfg.min_chars:
            return Rejection.of(doc.with_text(text), self.name, "empty",
                                detail="no main text found on the page", html_chars=html_chars)
        return doc.with_text(text, mime="text/plain").with_meta(html_chars=html_chars)
