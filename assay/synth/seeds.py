"""Where generators get their seeds: topic lists and curated web shards."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from assay.curation.document import Document
from assay.curation.shards import read_documents


def read_topics(path: str) -> list[str]:
    """One topic per line; blank lines and '#' comments are ignored; duplicates are dropped in order."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"topic list {path!r} not found: pass a text file with one topic per line")
    seen: dict[str, None] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            topic = line.split("#", 1)[0].strip()
            if topic:
                seen.setdefault(topic, None)
    if not seen:
        raise ValueError(f"topic list {path!r} has no topics (one per line, '#' starts a comment)")
    return list(seen)


def read_pages(shards: str, limit: int | None = None) -> Iterator[Document]:
    """Documents of a curated output (its docs/ folder or a folder of shards), at most `limit` of them."""
    for n, doc in enumerate(read_documents(shards, columns=["id", "text", "source", "url", "domain", "date"])):
        if limit is not None and n >= limit:
            return
        yield doc


def derive_seed(base: int, *parts: str) -> int:
    """A per-request seed from the run's seed and the request's identity (stable across runs)."""
    h = hashlib.blake2b(digest_size=4)
    h.update(str(base).encode())
    for part in parts:
        h.update(b"\x00" + part.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big")
