"""Decontamination: find documents that contain text of evaluation items (n-gram overlap).

Benchmark items (MMLU questions shipped in data/eval/, plus any JSONL the user gives) are normalised like
dedup does (assay.curation.document.normalize_text: case, accents, punctuation, spacing) and cut into word
n-grams (n = 13 by default). A document is flagged when it shares at least `min_hits` n-grams with one
item; items shorter than n words (but at least `min_words`) are matched whole. A flagged document goes to
the ledger naming the benchmark, the item and the matched words.
"""
from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from assay.curation.document import Document, Rejection, normalize_text
from assay.curation.stage import Stage

MMLU_PATH = str(Path(__file__).resolve().parents[2] / "data" / "eval" / "mmlu.jsonl.gz")
TEXT_FIELDS = ("question", "prompt", "text", "problem", "input")
ID_FIELDS = ("id", "task_id", "question_id", "uid")


@dataclass
class DecontamConfig:
    """The `decontam` stage: which evaluation sets, and how much shared text flags a document."""

    n: int = 13  # words per n-gram; 13 as in GPT-3's contamination analysis (Brown et al. 2020, appendix C)
    min_hits: int = 1  # n-grams shared with one item needed to flag a document
    min_words: int = 8  # items shorter than this are too generic to match on
    mmlu: bool = True  # check MMLU's test questions shipped in data/eval/mmlu.jsonl.gz
    eval_jsonl: list[str] = field(default_factory=list)  # more evaluation sets: one JSON object per line

    def __post_init__(self) -> None:
        if self.n < 3:
            raise ValueError(f"decontam.n must be >= 3 ({DecontamConfig.n} is the usual choice), got {self.n}")
        if self.min_hits < 1 or self.min_words < 1:
            raise ValueError("decontam.min_hits and decontam.min_words must be >= 1")


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item to keep out of the corpus."""

    benchmark: str  # the evaluation set's name, e.g. "mmlu"
    item_id: str  # its id within that set
    text: str  # the question text that is matched


@dataclass(frozen=True)
class Contamination:
    """A document's match with one item."""

    item: EvalItem  # the item matched
    hits: int  # shared n-grams
    item_ngrams: int  # n-grams the item has
    matched: str  # one shared n-gram, normalised

    @property
    def item_overlap(self) -> float:
        return self.hits / self.item_ngrams if self.item_ngrams else 0.0


def _open_text(path: str):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def load_jsonl_items(path: str, benchmark: str | None = None) -> list[EvalItem]:
    """Items of one evaluation JSONL; the text is the first of question/prompt/text/problem/input."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"evaluation set {path!r} not found: pass a JSONL file, one JSON object per line")
    name = benchmark or Path(path).name.split(".")[0]
    items = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno} is not JSON ({exc.msg}); each line must be one JSON "
                                 "object") from None
            text = next((row[f] for f in TEXT_FIELDS if isinstance(row, dict) and isinstance(row.get(f), str)), None)
            if text is None:
                raise ValueError(f"{path}:{lineno} has none of the text fields {TEXT_FIELDS}; add one "
                                 "(e.g. \"question\") holding the evaluation text")
            item_id = next((str(row[f]) for f in ID_FIELDS if row.get(f) is not None), None)
            if item_id is None:
                subject = row.get("topic") or row.get("subject")
                item_id = f"{subject}/{lineno}" if subject else str(lineno)
            items.append(EvalItem(name, item_id, text))
    return items


def load_eval_items(cfg: DecontamConfig) -> list[EvalItem]:
    items = load_jsonl_items(MMLU_PATH, "mmlu") if cfg.mmlu else []
    for path in cfg.eval_jsonl:
        items.extend(load_jsonl_items(path))
    if not items:
        raise ValueError("no evaluation items to decontaminate against: keep mmlu on or pass --eval-jsonl FILE")
    return items


def _grams(words: list[str], n: int) -> list[str]:
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


class NgramIndex:
    """n-gram -> items that contain it, over every evaluation item."""

    def __init__(self, items: list[EvalItem], cfg: DecontamConfig):
        self.cfg, self.items = cfg, items
        self.index: dict[int, list[int]] = {}
        self.sizes: list[int] = []
        self.short_lengths: set[int] = set()
        self.normalized: list[str] = []
        for idx, item in enumerate(items):
            words = normalize_text(item.text).split()
            self.normalized.append(f" {' '.join(words)} ")
            if len(words) < cfg.min_words:
                self.sizes.append(0)
                continue
            if len(words) < cfg.n:
                grams = [" ".join(words)]
                self.short_lengths.add(len(words))
            else:
                grams = _grams(words, cfg.n)
            unique = set(grams)
            self.sizes.append(len(unique))
            for gram in unique:
                self.index.setdefault(hash(gram), []).append(idx)

    def find(self, text: str) -> Contamination | None:
        """The item sharing the most n-grams with `text` (at least min_hits), or None."""
        words = normalize_text(text).split()
        hits: Counter[int] = Counter()
        example: dict[int, str] = {}
        for length in (self.cfg.n, *sorted(self.short_lengths)):
            for gram in set(_grams(words, length)):
                for idx in self.index.get(hash(gram), ()):
                    if self._contains(idx, gram, length):
                        hits[idx] += 1
                        example.setdefault(idx, gram)
        best = [(count, -idx) for idx, count in hits.items() if count >= self.cfg.min_hits]
        if not best:
            return None
        count, neg = max(best)
        return Contamination(self.items[-neg], count, self.sizes[-neg], example[-neg])

    def _contains(self, idx: int, gram: str, length: int) -> bool:
        """Confirms a hash hit against the item's words (hash collisions must not flag a document)."""
        if length < self.cfg.n:
            return self.normalized[idx] == f" {gram} "
        return f" {gram} " in self.normalized[idx]


class DecontamStage(Stage):
    """Per-document stage: a document containing evaluation text becomes a ledger record naming the item."""

    name = "decontam"

    def __init__(self, cfg: DecontamConfig | None = None):
        self.cfg = cfg or DecontamConfig()
        self._index: NgramIndex | None = None

    def setup(self) -> None:
        if self._index is None:
            self._index = NgramIndex(load_eval_items(self.cfg), self.cfg)

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {}

    def process(self, doc: Document) -> Document | Rejection:
        self.setup()
        found = self._index.find(doc.text)
        if found is None:
            return doc
        item = found.item
        return Rejection.of(doc, self.name, "benchmark_overlap",
                            detail=f"{self.cfg.n}-gram overlap with {item.benchmark} item {item.item_id} "
                                   f"({found.hits} shared): \"{found.matched}\"",
                            benchmark=item.benchmark, benchmark_item=item.item_id, benchmark_hits=found.hits,
                            benchmark_item_overlap=round(found.item_overlap, 4))

    def __getstate__(self):  # ship the config to Beam workers, rebuild the index there
        return {"cfg": self.cfg, "_index": None}
