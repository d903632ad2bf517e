"""The labelled quality corpus as the default pipeline sees it before filtering (shared by the tuning and
classifier-building scripts): each page extracted with resiliparse and language-identified on its prose view."""
from __future__ import annotations

import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from curation.document import Document, Rejection  # noqa: E402
from curation.extract import ExtractConfig, ExtractText  # noqa: E402
from curation.langid import IdentifyLanguage, LangIdConfig  # noqa: E402


def read_pages(corpus: str):
    """(manifest row, HTML Document) for every response record of the corpus's WARC files."""
    from warcio.archiveiterator import ArchiveIterator

    with open(os.path.join(corpus, "manifest.jsonl"), encoding="utf-8") as fh:
        labels = {row["url"]: row for row in map(json.loads, fh)}
    for name in sorted(os.listdir(corpus)):
        if not name.endswith(".warc.gz"):
            continue
        with open(os.path.join(corpus, name), "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response":
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                row = labels[url]
                body = record.content_stream().read().decode(row["charset"], errors="replace")
                yield row, Document(id=row["record_id"], text=body, url=url, mime="text/html")


def english_pages(corpus: str, with_duplicates: bool = False) -> list[tuple[dict, Document]]:
    """Pages that pass extraction and English language ID (what the filters and classifiers judge)."""
    extract, langid = ExtractText(ExtractConfig(engine="resiliparse")), IdentifyLanguage(LangIdConfig())
    out = []
    for row, doc in read_pages(corpus):
        if not with_duplicates and (row["near_duplicate_of"] or row.get("exact_duplicate_of")):
            continue
        doc = extract(doc)
        if not isinstance(doc, Rejection):
            doc = langid(doc)
        if not isinstance(doc, Rejection):
            out.append((row, doc))
    return out
