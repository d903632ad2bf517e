"""The tokenize step's output, staged between Beam and packing: per work item one Parquet file of (pool, id,
n_tokens, tokens), the token ids with EOS as little-endian uint32 bytes (the final shards pick uint16 when
the vocabulary fits). Apart from tokenize_beam.py so reading it back needs no Beam."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.curation.shards import shard_files

STAGED_SCHEMA = pa.schema([("pool", pa.string()), ("id", pa.string()), ("n_tokens", pa.int64()),
                           ("tokens", pa.binary())])
STAGED_DTYPE = np.dtype("<u4")


class StagedTokens:
    """The Beam stage's output: per pool, document id -> token count, and each document's token ids."""

    def __init__(self, directory: str):
        files = shard_files(directory)
        table = pa.concat_tables([pq.read_table(f) for f in files]) if files else STAGED_SCHEMA.empty_table()
        tokens = table.column("tokens").cast(pa.large_binary()).combine_chunks()
        offsets = np.frombuffer(tokens.buffers()[1], dtype=np.int64)
        self._offsets = offsets[tokens.offset:tokens.offset + len(tokens) + 1]
        data = tokens.buffers()[2]
        self._data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        self._rows: dict[str, dict[str, int]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        for i, (pool, doc_id, n) in enumerate(zip(table.column("pool").to_pylist(), table.column("id").to_pylist(),
                                                  table.column("n_tokens").to_pylist())):
            self._rows.setdefault(pool, {})[doc_id] = i
            self._counts.setdefault(pool, {})[doc_id] = n

    def documents(self, pool: str) -> dict[str, int]:
        return self._counts.get(pool, {})

    def tokens(self, pool: str, doc_id: str) -> np.ndarray:
        i = self._rows[pool][doc_id]
        return self._data[self._offsets[i]:self._offsets[i + 1]].view(STAGED_DTYPE)
