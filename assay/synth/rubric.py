"""Rubric annotation: an LLM grades documents 0-5 (educational value, knowledge level).

The score is the expectation of the grade under the model's probabilities of the tokens "0".."5" at the
answer position (one forward pass per document; through vLLM or an OpenAI server via top logprobs),
which is smoother than the sampled digit. It is written as label columns the classifiers consume:
`edu_score` / `knowledge_score` (float) and `<name>_annotator` (the model's identity).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from assay.curation.document import Document
from assay.synth.backends.base import Backend, expected_score
from assay.synth.cache import RequestCache, request_key
from assay.synth.config import Sampling
from assay.synth.templates import get_template

RUBRICS = {"edu_score": "rubric.edu.v1", "knowledge_score": "rubric.knowledge.v1"}
SCORE_TOKENS = ["0", "1", "2", "3", "4", "5"]
_SCORE_SAMPLING = Sampling(max_new_tokens=1)


@dataclass
class RubricConfig:
    """`assay synth annotate`: which rubrics score each page."""

    rubrics: list[str] = field(default_factory=lambda: ["edu_score"])  # score columns to write (RUBRICS)
    max_chars: int = 3000  # the page is truncated to this many characters in the prompt

    def __post_init__(self) -> None:
        bad = [r for r in self.rubrics if r not in RUBRICS]
        if bad:
            raise ValueError(f"unknown rubric(s) {bad}; choose from {', '.join(RUBRICS)}")


def rubric_columns(cfg: RubricConfig) -> dict[str, pa.DataType]:
    cols: dict[str, pa.DataType] = {}
    for name in cfg.rubrics:
        cols[name] = pa.float64()
        cols[f"{name}_annotator"] = pa.string()
    return cols


def annotate(backend: Backend, docs: list[Document], cfg: RubricConfig,
             cache: RequestCache | None = None) -> list[Document]:
    """Docs with score columns added. A document the model cannot score keeps a null score."""
    cache = cache if cache is not None else RequestCache(None)
    out = list(docs)
    for name in cfg.rubrics:
        template = get_template(RUBRICS[name])
        prompts = [template.render(text=d.text[:cfg.max_chars]) for d in docs]
        keys = [request_key(backend.kind, backend.model_id, template.id, template.hash, _SCORE_SAMPLING, 0, p)
                for p in prompts]
        probs: list[dict | None] = [None] * len(docs)
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None:
                probs[i] = hit["probs"]
                backend.usage.cache_hits += 1
        missing = [i for i, p in enumerate(probs) if p is None]
        if missing:
            fresh = backend.next_token_probs([prompts[i] for i in missing], SCORE_TOKENS)
            for i, dist in zip(missing, fresh):
                cache.put(keys[i], {"probs": dist})
                probs[i] = dist
        out = [d.with_meta(**{name: expected_score(p), f"{name}_annotator": backend.model_id})
               for d, p in zip(out, probs)]
    return out
