"""Textbook-style generation: topics x audiences x styles, from a topic list or inspired by curated web
pages, either in one pass or as an outline followed by one request per section."""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from assay.curation.document import Document, Rejection
from assay.synth.items import Answer, PromptItem, generator_stage, rejected, to_document
from assay.synth.seeds import derive_seed
from assay.synth.templates import get_template

GENERATOR = "textbook"
STAGE = generator_stage(GENERATOR)


@dataclass
class TextbookConfig:
    """`assay synth textbooks`: topics (or pages) x audiences x styles, one request each."""

    #: readers each section is written for
    audiences: list[str] = field(default_factory=lambda: ["young children", "high school students",
                                                          "college students", "professionals"])
    styles: list[str] = field(default_factory=lambda: ["textbook chapter", "narrative story", "lecture notes"])  # forms
    outline_sections: int = 0  # 0: one pass; N > 0: an outline of N sections, then one request per section
    max_page_chars: int = 2000  # a seed page is cut to this many characters in the prompt
    min_chars: int = 20  # shorter generations go to the ledger
    seed: int = 0  # with the labels, derives each request's sampling seed


def topic_items(topics: list[str], cfg: TextbookConfig) -> list[PromptItem]:
    template = get_template("textbook.outline.v1" if cfg.outline_sections else "textbook.topic.v1")
    items = []
    for topic, audience, style in itertools.product(topics, cfg.audiences, cfg.styles):
        labels = {"topic": topic, "audience": audience, "style": style}
        seed = derive_seed(cfg.seed, GENERATOR, topic, audience, style)
        items.append(PromptItem.build(GENERATOR, template, seed, labels=labels, topic=topic, audience=audience,
                                      style=style, sections=str(cfg.outline_sections)))
    return items


def page_items(pages: list[Document], cfg: TextbookConfig) -> list[PromptItem]:
    """'Write a textbook section inspired by this page': the page is the parent of what is generated."""
    template = get_template("textbook.page.v1")
    items = []
    for page, audience, style in itertools.product(pages, cfg.audiences, cfg.styles):
        topic = f"web:{page.domain or page.source or page.id}"
        seed = derive_seed(cfg.seed, GENERATOR, page.id, audience, style)
        items.append(PromptItem.build(GENERATOR, template, seed, parent_id=page.id,
                                      labels={"topic": topic, "audience": audience, "style": style},
                                      page=page.text[:cfg.max_page_chars], audience=audience, style=style))
    return items


#: an outline line longer than this is prose around the outline, not a section title
MAX_SECTION_TITLE_CHARS = 120
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)]|[IVXivx]+[.)]|#+)\s*")


def parse_outline(text: str, limit: int) -> list[str]:
    titles = []
    for line in text.splitlines():
        title = _BULLET.sub("", line).strip().strip("*").strip()
        if title and len(title) <= MAX_SECTION_TITLE_CHARS and title not in titles:
            titles.append(title)
    return titles[:limit]


def section_items(outline: Answer, cfg: TextbookConfig) -> list[PromptItem] | Rejection:
    """An answered outline -> one request per section (parent: the outline request), or a ledger record."""
    titles = parse_outline(outline.completion.text, cfg.outline_sections)
    if not titles:
        return rejected(GENERATOR, outline.item.id, "empty_outline", "the outline had no usable section title",
                        outline.completion.text, outline.item.labels)
    template = get_template("textbook.section.v1")
    labels = dict(outline.item.labels, sections=len(titles))
    listing = "\n".join(f"- {t}" for t in titles)
    items = []
    for title in titles:
        seed = derive_seed(outline.item.seed, "section", title)
        items.append(PromptItem.build(GENERATOR, template, seed, parent_id=outline.item.id, labels=labels,
                                      topic=labels["topic"], audience=labels["audience"], style=labels["style"],
                                      outline=listing, section=title))
    return items


def finish(answer: Answer, cfg: TextbookConfig) -> Document | Rejection:
    text = answer.completion.text.strip()
    if len(text) < cfg.min_chars:
        return rejected(GENERATOR, answer.item.id, "too_short", f"{len(text)} chars < min_chars {cfg.min_chars}",
                        text, dict(answer.item.labels, request_key=answer.request_key))
    return to_document(answer, text)
