"""Pack a phase's documents (token ids with EOS) into rows of seq_len + 1 tokens and shuffle the rows.

Documents are concatenated in the phase's seeded order and cut into consecutive rows; a document may run
across rows. The last partial row is dropped (counted as the phase's `dropped_tail_tokens`). The rows are
then permuted with a generator seeded by (seed, phase index); the index keeps each row's packed position,
so the original stream can be rebuilt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.trainer.token_shards import row_length


@dataclass
class PackedPhase:
    rows: np.ndarray  # [sequences, seq_len + 1], shuffled
    packed_positions: np.ndarray  # rows[i] was row packed_positions[i] of the packed stream
    dropped_tail_tokens: int


def pack_phase(token_arrays: list[np.ndarray], sequences: int, seq_len: int, seed: int, phase_index: int,
               shuffle: bool = True) -> PackedPhase:
    row = row_length(seq_len)
    stream = np.concatenate(token_arrays) if token_arrays else np.zeros(0, np.uint32)
    need = sequences * row
    if len(stream) < need:
        raise ValueError(f"packing needs {need} tokens for {sequences} sequences but the phase has {len(stream)}")
    rows = stream[:need].reshape(sequences, row)
    if shuffle:
        order = np.random.Generator(np.random.PCG64([seed, phase_index])).permutation(sequences)
    else:
        order = np.arange(sequences)
    return PackedPhase(rows=rows[order], packed_positions=order, dropped_tail_tokens=len(stream) - need)
