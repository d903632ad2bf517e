"""Rephrasing of web documents in the Nemotron-CC modes: an encyclopedic rewrite (for noisy pages) and
question-answer pairs, a distilled summary, or a knowledge list (for good pages)."""
from __future__ import annotations

from dataclasses import dataclass, field

from assay.curation.document import Document, Rejection
from assay.synth.items import Answer, PromptItem, generator_stage, rejected, to_document
from assay.synth.seeds import derive_seed
from assay.synth.templates import get_template

GENERATOR = "rephrase"
STAGE = generator_stage(GENERATOR)
MODES = {"encyclopedic": "rephrase.encyclopedic.v1", "qa": "rephrase.qa.v1", "distill": "rephrase.distill.v1",
         "knowledge_list": "rephrase.knowledge_list.v1"}


@dataclass
class RephraseConfig:
    """`assay synth rephrase`: each page rewritten in each mode."""

    modes: list[str] = field(default_factory=lambda: ["encyclopedic"])  # rewrites per page (MODES)
    max_input_chars: int = 4000  # a page is cut to this many characters in the prompt
    min_chars: int = 20  # shorter generations go to the ledger
    seed: int = 0  # with the page id and mode, derives each request's sampling seed

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown rephrase mode(s) {unknown}; choose from {', '.join(MODES)}")


def rephrase_items(docs: list[Document], cfg: RephraseConfig) -> list[PromptItem]:
    items = []
    for doc in docs:
        for mode in cfg.modes:
            seed = derive_seed(cfg.seed, GENERATOR, doc.id, mode)
            items.append(PromptItem.build(GENERATOR, get_template(MODES[mode]), seed, parent_id=doc.id,
                                          labels={"mode": mode, "topic": f"web:{doc.domain or doc.source}"},
                                          text=doc.text[:cfg.max_input_chars]))
    return items


def finish(answer: Answer, cfg: RephraseConfig) -> Document | Rejection:
    text = answer.completion.text.strip()
    if len(text) < cfg.min_chars:
        return rejected(GENERATOR, answer.item.id, "too_short", f"{len(text)} chars < min_chars {cfg.min_chars}",
                        text, dict(answer.item.labels, parent_id=answer.item.parent_id))
    return to_document(answer, text)
