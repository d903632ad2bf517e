"""Deduplication logic: exact content hashes, MinHash-LSH band keys, and clustering of matches.

The Beam side (assay/pipelines/job/dedup.py) groups by these keys; everything that decides *what* a duplicate
is lives here, so the curation pipeline, the synthetic-data checks and the tests share it.
MinHash signatures are datatrove's (FineWeb's), so ours match the reference recipe: its hash parameters and
signature code, with the shingles computed as datatrove computes them in fewer Python steps
(assay/curation/fast/shingles.py,
assay's word split under datatrove's tokenizer) and each distinct shingle hashed once (a repeated shingle cannot
change a minimum). tests/test_fast_filters.py checks the band keys against datatrove's own calls.
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from assay.curation.document import content_hash, normalize_text

__all__ = ["EXACT_DEDUP", "FUZZY_DEDUP", "MinHashConfig", "MinHasher", "connected_components", "content_hash",
           "word_shingles", "jaccard"]

#: the two dedup stages' names, in the funnel and the ledger
EXACT_DEDUP = "exact_dedup"
FUZZY_DEDUP = "fuzzy_dedup"


@dataclass
class MinHashConfig:
    """FineWeb's defaults: 5-gram word shingles, 14 bands x 8 rows = 112 hashes.

    P(candidate) for similarity s is 1 - (1 - s^rows)^bands: ~0.92 at s=0.8, ~0.0002 at s=0.3.
    """

    n_grams: int = 5  # words per shingle
    bands: int = 14  # LSH bands (datatrove's num_buckets): two texts sharing one band are candidates
    rows: int = 8  # hashes per band (datatrove's hashes_per_bucket)
    seed: int = 1  # seeds the hash functions; every worker must use the same
    language: str = "en"  # datatrove's word tokenizer for the shingles

    def __post_init__(self) -> None:
        for name in ("n_grams", "bands", "rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"minhash.{name} must be >= 1, got {getattr(self, name)}")

    def candidate_probability(self, similarity: float) -> float:
        return 1.0 - (1.0 - similarity**self.rows) ** self.bands


class MinHasher:
    """Text -> band keys. Two texts sharing any band key are candidate near-duplicates."""

    def __init__(self, cfg: MinHashConfig | None = None):
        self.cfg = cfg or MinHashConfig()
        self._sig = None

    def _signer(self):
        if self._sig is None:
            from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

            from assay.curation.fast.word_cache import install_word_split

            install_word_split(self.cfg.language)  # once per worker: datatrove's tokenizer is one per process

            dt_cfg = MinhashConfig(n_grams=self.cfg.n_grams, num_buckets=self.cfg.bands,
                                   hashes_per_bucket=self.cfg.rows, seed=self.cfg.seed)
            # the step wants an output folder for its own run(); we only call its signature methods
            self._sig = MinhashDedupSignature(tempfile.gettempdir(), config=dt_cfg, language=self.cfg.language)
        return self._sig

    def signature(self, text: str) -> list[list[int]] | None:
        """One list of `rows` hashes per band, or None when the text has no full n-gram to hash."""
        import numpy as np

        from assay.curation.fast.shingles import shingles, signature

        signer = self._signer()
        hashed = shingles(signer, text)
        if hashed.size == 0:
            return None
        return signature(signer, np.unique(hashed).reshape((-1, 1)))

    def band_keys(self, text: str) -> list[str]:
        sig = self.signature(text)
        if sig is None:
            return []
        keys = []
        for band, rows in enumerate(sig):
            digest = hashlib.blake2b(",".join(map(str, rows)).encode(), digest_size=12).hexdigest()
            keys.append(f"{band:03d}:{digest}")
        return keys


def connected_components(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find over duplicate edges: member id -> representative id (the smallest id in its cluster).

    The smallest id is independent of edge order, so every run and every worker count picks the same
    representative.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
    return {node: find(node) for node in list(parent)}


def word_shingles(text: str, n: int = MinHashConfig.n_grams) -> set[str]:
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str, n: int = MinHashConfig.n_grams) -> float:
    sa, sb = word_shingles(a, n), word_shingles(b, n)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
