"""An in-memory token stream with the token-shard reader's interface, for smoke runs and benchmarks.

Each sequence is an arithmetic progression modulo the vocabulary with a random start and stride (seeded per
global sequence index), so a model can learn it and every rank / resume sees reproducible data.
"""
from __future__ import annotations

import hashlib

import numpy as np

from assay.trainer.token_shards import SequenceCursor, row_length


class SyntheticTokenStream(SequenceCursor):
    data_name = "synthetic stream"
    resume_hint = "resume with the same [train] settings"

    def __init__(self, vocab_size: int, seq_len: int, n_sequences: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self._global = list(range(rank, n_sequences, world_size))
        self._pos = 0
        key = f"synthetic:{vocab_size}:{seq_len}:{n_sequences}:{seed}".encode()
        self.fingerprint = hashlib.sha256(key).hexdigest()

    def __len__(self) -> int:
        return len(self._global)

    def sequence(self, local: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, self._global[local]))
        start, stride = rng.integers(0, self.vocab_size), rng.integers(1, 8)
        return (start + stride * np.arange(row_length(self.seq_len))) % self.vocab_size
