"""A labelled corpus: WARC files plus manifest.jsonl, one labelled row per WARC record.

The layout is the one data/sample/, data/quality/{train,eval}/ and the real-web corpus use (docs/quality.md); a
row of the real-web corpus may also carry a rubric rating (edu_score 0-5, durable). Older category
names of the sample (doc, index) are read as the quality corpus's (edu, nav), so both corpora evaluate alike.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

MANIFEST = "manifest.jsonl"
#: rubric ratings of a corpus's pages, beside its manifest (record_id, edu 0-5, durable, category, rater): the
#: committed quality corpus keeps them apart from the manifest its build script writes
RATINGS = "ratings.jsonl"
#: the sample's category names -> the quality corpus's
CATEGORY_ALIASES = {"doc": "edu", "index": "nav"}


@dataclass(frozen=True)
class LabelledPage:
    record_id: str
    url: str
    category: str
    source: str
    language: str
    near_duplicate_of: str | None = None
    near_duplicate_jaccard: float | None = None
    exact_duplicate_of: str | None = None
    #: a rating on the 0-5 educational-value rubric (data/realweb/RUBRIC.md) and durable / ephemeral, where the
    #: page was rated by reading it; None on pages labelled by their source only
    edu_score: int | None = None
    durable: str | None = None

    @property
    def duplicate_of(self) -> str | None:
        return self.exact_duplicate_of or self.near_duplicate_of

    @property
    def jaccard(self) -> float | None:
        return 1.0 if self.exact_duplicate_of else self.near_duplicate_jaccard


@dataclass
class LabelledCorpus:
    directory: str
    pages: list[LabelledPage]

    @property
    def warc_files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.directory, "*.warc.gz")) +
                      glob.glob(os.path.join(self.directory, "*.warc")))

    def by_url(self) -> dict[str, LabelledPage]:
        return {p.url: p for p in self.pages}


def load_corpus(directory: str) -> LabelledCorpus:
    """Read DIR/manifest.jsonl; a missing file or a row without its labels is a clear error."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory}: no {MANIFEST}; a labelled corpus is WARC files plus a manifest "
                                "(build one with scripts/build_quality_corpus.py, see docs/quality.md)")
    pages: list[LabelledPage] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                category = CATEGORY_ALIASES.get(row["category"], row["category"])
                pages.append(LabelledPage(
                    record_id=row["record_id"], url=row["url"], category=category,
                    source=row.get("source_package") or "", language=row.get("language") or "",
                    near_duplicate_of=row.get("near_duplicate_of"),
                    near_duplicate_jaccard=row.get("near_duplicate_jaccard"),
                    exact_duplicate_of=row.get("exact_duplicate_of"),
                    edu_score=row.get("edu_score"), durable=row.get("durable")))
            except (KeyError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{n}: not a labelled row ({exc}); each row needs record_id, url and "
                                 "category") from None
    if not pages:
        raise ValueError(f"{path}: no labelled rows")
    pages = _with_ratings(pages, os.path.join(directory, RATINGS))
    ids = [p.record_id for p in pages]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: record_id values repeat; every WARC record needs its own id")
    corpus = LabelledCorpus(os.path.abspath(directory), pages)
    if not corpus.warc_files:
        raise FileNotFoundError(f"{directory}: a manifest but no *.warc.gz files beside it")
    return corpus


def _with_ratings(pages: list[LabelledPage], path: str) -> list[LabelledPage]:
    """Join RATINGS (first ratings only; blind re-ratings carry `rerate: true`) onto the pages by record id."""
    if not os.path.isfile(path):
        return pages
    from dataclasses import replace

    ratings = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                row = json.loads(line)
                if row.get("edu") not in range(6) or row.get("durable") not in ("durable", "ephemeral"):
                    raise ValueError(f"{path}:{n}: a rating needs edu 0-5 and durable 'durable' or 'ephemeral'")
                if not row.get("rerate"):
                    ratings[row["record_id"]] = row
    unknown = set(ratings) - {p.record_id for p in pages}
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} ratings name no page of the manifest, e.g. {sorted(unknown)[:2]}")
    return [replace(p, edu_score=ratings[p.record_id]["edu"], durable=ratings[p.record_id]["durable"])
            if p.record_id in ratings else p for p in pages]


def labelled_documents(corpus: LabelledCorpus):
    """(LabelledPage, Document) for every labelled record of the corpus's WARC files, read as `assay run` reads
    them; a labelled record the readers cannot give back is an error, never skipped."""
    from assay.curation.document import Document
    from assay.curation.readers import ReaderConfig, read_input

    by_id = {p.record_id: p for p in corpus.pages}
    seen = 0
    for path in corpus.warc_files:
        for doc in read_input(path, ReaderConfig()):
            if isinstance(doc, Document) and doc.id in by_id:
                seen += 1
                yield by_id[doc.id], doc
    if seen != len(by_id):
        raise ValueError(f"{corpus.directory}: {len(by_id)} labelled records but the WARC files gave {seen}")


def english_pages(corpus: LabelledCorpus, with_duplicates: bool = False):
    """[(LabelledPage, Document)] of the pages the default pipeline's filters and classifiers judge: extracted
    and identified as English with the default extraction and language-ID settings. Copies (exact and near
    duplicates) are left out unless asked for."""
    from assay.curation.document import Document
    from assay.curation.extract import ExtractText
    from assay.curation.langid import IdentifyLanguage

    extract, langid = ExtractText(), IdentifyLanguage()
    out = []
    for page, doc in labelled_documents(corpus):
        if page.duplicate_of and not with_duplicates:
            continue
        doc = extract(doc)
        doc = langid(doc) if isinstance(doc, Document) else doc
        if isinstance(doc, Document):
            out.append((page, doc))
    return out
