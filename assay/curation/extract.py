"""Main-text extraction from HTML with resiliparse (the default) or trafilatura, plus the page's own signals.

Boilerplate (navigation, footers, cookie banners) is what makes web text bad training data; extraction
keeps the article body. A page with nothing left is rejected as "empty" rather than passed on blank.

The default path is resiliparse's main content, then a boilerplate pass of our own
(assay/curation/extract_boilerplate.py:
link lists, share/tag/login lines, teaser sections), with trafilatura as a second opinion on the pages where
resiliparse's text is empty, very short or link-dense. `extractor` records which one (and its version) produced
each document's text. benchmarks/extraction_quality.py measures it against trafilatura on public benchmarks.

Besides the text, extraction records what only the HTML shows and later filters need: the prose view (the
text without code blocks, tables and formulas), `link_share` and `page_link_share` (how much of the main
content's and of the whole page's visible text is link text: menus, indexes and tables of contents are mostly
links) and the page's `title` and first `heading` (release notes name themselves there). docs/quality.md has
the numbers behind each.

trafilatura 1.x (the version datatrove pins) keeps the HTML source's hard line wraps inside paragraphs and
breaks lines around inline <code>, which makes prose look like short broken lines to the FineWeb and C4
line rules. We take its XML output instead and write one line per block (paragraph, heading, list item,
table row), collapsing whitespace inside blocks and keeping code blocks verbatim.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from assay.curation.document import Document, Rejection
from assay.curation.extract_boilerplate import boilerplate_lines, link_chars, mark_links, unmark
from assay.curation.stage import Stage
from assay.groundwork.config import FieldError, check_choices


@dataclass
class ExtractConfig:
    """The `extract` stage: which engine finds a page's main text, and its options."""

    #: "resiliparse" (default: keeps the main text of documentation pages that trafilatura cuts, several times
    #: faster; a boilerplate pass and a trafilatura second opinion on doubtful pages; docs/quality.md) or
    #: "trafilatura"
    engine: Literal["resiliparse", "trafilatura"] = "resiliparse"
    include_tables: bool = True  # trafilatura: keep tables in the main text
    include_comments: bool = False  # keep reader comments below the main text
    favor_precision: bool = False  # trafilatura: cut more of what might be boilerplate
    min_chars: int = 1  # a page with less extracted text than this is rejected as "empty"
    #: seconds one page may take; a slower page goes to the ledger as "timeout" (0 = no limit). Normal pages take
    #: milliseconds, a few MB of generated markup can keep trafilatura busy for minutes.
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        try:
            check_choices(self)  # engine (a config file's loader checks it as it reads; this is for code)
        except FieldError as exc:
            raise ValueError(f"extract.{exc}") from None
        if self.timeout_s < 0:
            raise ValueError(f"extract.timeout_s must be >= 0 (0 = no limit), got {self.timeout_s}")


class ExtractText(Stage):
    name = "extract"
    time_limit_key = "extract.timeout_s"

    def __init__(self, cfg: ExtractConfig | None = None):
        self.cfg = cfg or ExtractConfig()
        self.time_limit_s = self.cfg.timeout_s  # its own, tighter than the runner's (process_limited applies it)
        self._extract = None

    def setup(self) -> None:
        if self.cfg.engine == "resiliparse":
            self._extract = _resiliparse_text(self.cfg)
        else:
            self._extract = _trafilatura_xml_text(self.cfg)

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {"html_chars": pa.int64(), "prose_share": pa.float64(), "link_share": pa.float64(),
                "page_link_share": pa.float64(), "title": pa.string(), "heading": pa.string(),
                "extractor": pa.string()}

    def timeout_signals(self, doc: Document) -> dict:
        return {"html_chars": len(doc.text)} if doc.mime == "text/html" else {}

    def process(self, doc: Document) -> Document | Rejection:
        if self._extract is None:
            self.setup()
        prose = None
        page: dict = {}
        if doc.mime != "text/html":
            text = doc.text.strip()
            html_chars = None
        else:
            html_chars = len(doc.text)
            text, prose, page = self._extract(doc.text) if doc.text.strip() else ("", None, {})
            text = text.strip()
        if len(text) < self.cfg.min_chars:
            return Rejection.of(doc.with_text(text), self.name, "empty",
                                detail="no main text found on the page", html_chars=html_chars, **page)
        return doc.with_text(text, mime="text/plain", prose=prose).with_meta(
            html_chars=html_chars, prose_share=round(len(prose) / len(text), 4) if prose is not None else None,
            **page)


#: elements left out of the prose view: code blocks, tables and MathML formulas (inline <code> stays: it is part
#: of a sentence)
NON_PROSE_ELEMENTS = ["pre", "table", "math"]

#: an operator between two operands: "x = 3", "f(x)=x2+1", "P(2 < x < 18)", "a ≤ b"
_OPERATION = re.compile(r"[\w)\]]\s*[=<>≤≥≠≈±+×÷^∑∫√−]\s*[\w(\[√−-]")
_WORD = re.compile(r"^[^\W\d_]{2,}[.,;:!?)]*$")


def without_formula_lines(prose: str) -> str:
    """The prose view without lines that are formulas written as text, as code blocks are left out.

    Algebra written as text ("P(x<k)=0.90", "μ = 0 + 23 2 = 11.50 seconds") is mostly tokens without letters,
    so Gopher's "words contain a letter" rule dropped mathematics textbook sections as if they were symbol
    junk (docs/quality.md). A line is a formula when it shows an operation between operands and fewer than
    half of its tokens are words of two or more letters; a line of separators ("=====") is no operation and
    stays, so symbol junk is still judged.
    """
    if not _OPERATION.search(prose):
        return prose
    kept = []
    for line in prose.split("\n"):
        tokens = line.split()
        if tokens and _OPERATION.search(line) and 2 * sum(1 for t in tokens if _WORD.match(t)) < len(tokens):
            continue
        kept.append(line)
    return "\n".join(kept)


def _resiliparse_text(cfg: ExtractConfig):
    """html -> (text, prose, page) with resiliparse's main content, a boilerplate pass, and a fallback.

    The page is parsed once with its link text marked (assay/curation/extract_boilerplate.py), so three resiliparse
    calls give the text, the prose view and the whole page's text, and the link shares come from the same marked
    text. The boilerplate pass drops link lists, share/tag/login lines and teaser sections from text and prose
    (the page signals are measured before it, as the filters were calibrated). A page whose main text comes out
    empty or very short, or whose main content is link-dense, is also given to
    trafilatura (`page["extractor"]` says which one produced the text); docs/quality.md has the measurements
    behind each choice.
    """
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree
    except ImportError as exc:  # pragma: no cover - resiliparse is a dependency; a broken install lands here
        raise RuntimeError("extract.engine = 'resiliparse' needs the resiliparse package: `pip install resiliparse`, "
                           "or set extract.engine = \"trafilatura\"") from exc
    options = dict(main_content=True, alt_texts=False, comments=cfg.include_comments, form_fields=False)
    fallback = None
    name = f"resiliparse {_version('resiliparse')}"

    def run(html: str) -> tuple[str, str, dict]:
        nonlocal fallback
        tree = HTMLTree.parse(mark_links(html))
        marked = _squeeze_blank_lines(extract_plain_text(tree, **options))
        page_text = extract_plain_text(tree, main_content=False, alt_texts=False, form_fields=False)
        page = _page_signals(tree, marked, page_text)
        lines = marked.split("\n") if marked else []
        dropped = {line for line, drop in zip(lines, boilerplate_lines(lines)) if drop}
        text = unmark("\n".join(line for line in lines if line not in dropped))
        short = len(text) < FALLBACK_BELOW_CHARS
        link_dense = text and (page["link_share"] or 0.0) >= SECOND_OPINION_LINK_SHARE
        if short or link_dense:
            if fallback is None:
                fallback = _trafilatura_xml_text(cfg, signals=False)
            other, other_prose, _ = fallback(html)
            if len(other) > len(text) if short else len(other) >= SECOND_OPINION_MIN_LENGTH * len(text):
                return other, other_prose, {**page, "extractor": f"trafilatura {_version('trafilatura')}"}
        prose = _squeeze_blank_lines(extract_plain_text(tree, skip_elements=NON_PROSE_ELEMENTS, **options))
        prose = unmark("\n".join(line for line in prose.split("\n") if line not in dropped))
        return text, without_formula_lines(prose), {**page, "extractor": name}

    return run


#: a main text shorter than this (characters) is asked of trafilatura too, and the longer of the two kept:
#: resiliparse's main-content heuristics return nothing on some article pages, and on some malformed pages it
#: sees no text at all where trafilatura's parser finds the article (docs/quality.md)
FALLBACK_BELOW_CHARS = 200
#: a main content at least this share link text (before the boilerplate pass) is asked of trafilatura too, and
#: trafilatura's text taken when it keeps at least SECOND_OPINION_MIN_LENGTH of ours: on the tuning sources these
#: are the pages where resiliparse keeps teaser lists and archive links (~11% of pages; docs/quality.md)
SECOND_OPINION_LINK_SHARE = 0.2
SECOND_OPINION_MIN_LENGTH = 0.5


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        return "unknown"


def page_signals(html: str) -> dict:
    """link_share, page_link_share, title and heading of an HTML page (see the module docstring)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(mark_links(html))
    main = extract_plain_text(tree, main_content=True, alt_texts=False, form_fields=False)
    return _page_signals(tree, main, extract_plain_text(tree, main_content=False, alt_texts=False, form_fields=False))


def _visible_chars(text: str) -> int:
    return link_chars(text)[0]


def _link_share(marked: str) -> float | None:
    visible, linked = link_chars(marked)
    return round(min(linked / visible, 1.0), 4) if visible else None


def _page_signals(tree, main_marked: str, page_marked: str) -> dict:
    """Link shares of the main content and of the whole page, title and first heading.

    `link_share` is measured where the text comes from (resiliparse's main content, before the boilerplate
    pass): a news or blog page's site menu, tag cloud and footer are boilerplate extraction removes.
    `page_link_share` counts the whole page, menus included: an index or landing page whose links extraction
    drops (leaving its intro paragraph) is still link-heavy there. The link_density filter reads both
    (assay/curation/page_filters.py). Both come from text whose link text is marked
    (assay/curation/extract_boilerplate.py).
    """
    body = tree.body
    if body is None:
        return {"link_share": None, "page_link_share": None, "title": _one_line(tree.title), "heading": None}
    h1 = body.query_selector("h1")
    return {"link_share": _link_share(main_marked), "page_link_share": _link_share(page_marked),
            "title": _one_line(unmark(tree.title or "")),
            "heading": _one_line(unmark(h1.text) if h1 is not None else None)}


def _one_line(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def _squeeze_blank_lines(text: str) -> str:
    """One line per block, like the trafilatura path: resiliparse separates paragraphs by blank lines."""
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())


def _trafilatura_xml_text(cfg: ExtractConfig, signals: bool = True):
    """html -> (text, prose) through trafilatura's XML output, as `trafilatura.extract(output_format="xml")` gives it.

    With `signals=False` (the resiliparse path's fallback, which has measured them) the page signals are skipped.
    `extract` also computes a SimHash fingerprint of every page for its XML header (about 40% of its time on
    documentation pages); we never read it. So we run the same two steps `extract` runs (bare_extraction,
    then determine_returnstring) without it, with the options built once.
    """
    from lxml import etree
    from trafilatura.core import bare_extraction, determine_returnstring
    from trafilatura.settings import Extractor, use_config

    options = Extractor(config=use_config(), output_format="xml", precision=cfg.favor_precision,
                        comments=cfg.include_comments, tables=cfg.include_tables, dedup=False,
                        with_metadata=False)
    name = f"trafilatura {_version('trafilatura')}"

    def run(html: str) -> tuple[str, str, dict]:
        page = {**page_signals(html), "extractor": name} if signals else {}
        try:
            document = bare_extraction(html, options=options, as_dict=False)
        except RuntimeError:  # trafilatura's own processing timeout: nothing extracted, like `extract`
            document = None
        if document is None:
            return "", "", page
        try:
            xml = determine_returnstring(document, options)
        except etree.XMLSyntaxError:  # its XML of a page with broken markup does not parse: nothing extracted
            return "", "", page
        return (*(xml_to_text_and_prose(xml) if xml else ("", "")), page)

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
    return xml_to_text_and_prose(xml)[0]


def xml_to_text_and_prose(xml: str) -> tuple[str, str]:
    """trafilatura's XML -> (text, prose): the text as above, and the same without code blocks and tables."""
    from lxml import etree

    try:
        root = etree.fromstring(xml.encode("utf-8"))
    except etree.XMLSyntaxError:
        return "", ""
    lines: list[str] = []
    prose: list[str] = []
    for container in root.iter("main", "comments"):
        for el in container:
            if el.tag == "code":
                code = "".join(el.itertext()).strip("\n")
                if code.strip():
                    lines.append(code)
            elif el.tag == "list":
                items = [f"- {t}" for t in (_block(item) for item in el.iter("item")) if t]
                lines += items
                prose += items
            elif el.tag == "table":
                for row in el.iter("row"):
                    cells = [_block(cell) for cell in row.iter("cell")]
                    if any(cells):
                        lines.append(" | ".join(cells))
            elif el.tag != "graphic":
                text = _block(el)
                if text:
                    lines.append(text)
                    prose.append(text)
    return "\n".join(lines), without_formula_lines("\n".join(prose))
