"""Main-text extraction from HTML with trafilatura (resiliparse when installed and asked for).

Boilerplate (navigation, footers, cookie banners) is what makes web text bad training data; extraction
keeps the article body. A page with nothing left is rejected as "empty" rather than passed on blank.

trafilatura 1.x (the version datatrove pins) keeps the HTML source's hard line wraps inside paragraphs and
breaks lines around inline <code>, which makes prose look like short broken lines to the FineWeb and C4
line rules. We take its XML output instead and write one line per block (paragraph, heading, list item,
table row), collapsing whitespace inside blocks and keeping code blocks verbatim.
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
    #: seconds one page may take; a slower page goes to the ledger as "timeout" (0 = no limit). Normal pages take
    #: milliseconds, a few MB of generated markup can keep trafilatura busy for minutes.
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.timeout_s < 0:
            raise ValueError(f"extract.timeout_s must be >= 0 (0 = no limit), got {self.timeout_s}")


class ExtractText(Stage):
    name = "extract"
    time_limit_key = "extract.timeout_s"

    def __init__(self, cfg: ExtractConfig | None = None):
        self.cfg = cfg or ExtractConfig()
        if self.cfg.engine not in ("trafilatura", "resiliparse"):
            raise ValueError(f"extract.engine must be 'trafilatura' or 'resiliparse', got {self.cfg.engine!r}")
        self.time_limit_s = self.cfg.timeout_s  # its own, tighter than the runner's (process_limited applies it)
        self._extract = None

    def setup(self) -> None:
        if self.cfg.engine == "resiliparse":
            try:
                from resiliparse.extract.html2text import extract_plain_text
            except ImportError as exc:  # pragma: no cover - depends on the optional package
                raise RuntimeError("extract.engine = 'resiliparse' needs `pip install resiliparse`") from exc
            self._extract = lambda html: extract_plain_text(html, main_content=True)
        else:
            self._extract = _trafilatura_xml_text(self.cfg)

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {"html_chars": pa.int64()}

    def timeout_signals(self, doc: Document) -> dict:
        return {"html_chars": len(doc.text)} if doc.mime == "text/html" else {}

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


def _trafilatura_xml_text(cfg: ExtractConfig):
    """html -> text through trafilatura's XML output, as `trafilatura.extract(output_format="xml")` gives it.

    `extract` also computes a SimHash fingerprint of every page for its XML header (about 40% of its time on
    documentation pages); we never read it. So we run the same two steps `extract` runs (bare_extraction,
    then determine_returnstring) without it, with the options built once.
    """
    from trafilatura.core import bare_extraction, determine_returnstring
    from trafilatura.settings import Extractor, use_config

    options = Extractor(config=use_config(), output_format="xml", precision=cfg.favor_precision,
                        comments=cfg.include_comments, tables=cfg.include_tables, dedup=False,
                        with_metadata=False)

    def run(html: str) -> str:
        try:
            document = bare_extraction(html, options=options, as_dict=False)
        except RuntimeError:  # trafilatura's own processing timeout: nothing extracted, like `extract`
            document = None
        if document is None:
            return ""
        xml = determine_returnstring(document, options)
        return xml_to_text(xml) if xml else ""

    return run


_LB = "\x00"  # stands for a <lb/> (an HTML <br>) while whitespace is collapsed


def _inline(el) -> str:
    parts = [el.text or ""]
    for child in el:
        parts.append(_LB if child.tag == "lb" else _inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _block(el) -> str:
    text = " ".join(_inline(el).split())
    return "\n".join(line.strip() for line in text.split(_LB) if line.strip())


def xml_to_text(xml: str) -> str:
    """trafilatura's XML -> plain text, one line per block; code blocks keep their own line breaks."""
    from lxml import etree

    try:
        root = etree.fromstring(xml.encode("utf-8"))
    except etree.XMLSyntaxError:
        return ""
    lines: list[str] = []
    for container in root.iter("main", "comments"):
        for el in container:
            if el.tag == "code":
                code = "".join(el.itertext()).strip("\n")
                if code.strip():
                    lines.append(code)
            elif el.tag == "list":
                lines += [f"- {t}" for t in (_block(item) for item in el.iter("item")) if t]
            elif el.tag == "table":
                for row in el.iter("row"):
                    cells = [_block(cell) for cell in row.iter("cell")]
                    if any(cells):
                        lines.append(" | ".join(cells))
            elif el.tag != "graphic":
                text = _block(el)
                if text:
                    lines.append(text)
    return "\n".join(lines)
