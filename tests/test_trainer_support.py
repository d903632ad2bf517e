"""Shared helpers for the trainer tests (no tests here): a real token-shard folder built from texts."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trainer.token_shards import TokenShardWriter
from trainer.tokenizer import eos_id, save_tokenizer, train_bpe

TEXTS = [
    "The mitochondria is the powerhouse of the cell. Cells turn sugar into energy.",
    "Water boils at one hundred degrees Celsius at sea level and freezes at zero.",
    "A prime number has exactly two divisors: one and itself. Two is the only even prime.",
    "Photosynthesis lets plants turn light, water and carbon dioxide into sugar and oxygen.",
    "The French Revolution began in 1789 and changed the politics of Europe for a century.",
    "In Python, a list comprehension builds a new list from an iterable in a single line.",
]
HELDOUT = {"edu": ["Plants make oxygen from light and water.", "Two is an even prime number."],
           "web": ["Click here to win a free prize now!!!", ""]}


def build_shards(directory: str, seq_len: int = 32, repeats: int = 1, texts=TEXTS) -> dict:
    """Tokenize `texts` with a freshly trained byte-level BPE, pack them (documents end with EOS) into
    sequences of seq_len + 1, write `repeats` copies as one phase, plus tokenizer and held-out pools."""
    tok = train_bpe(texts * 4, vocab_size=300, min_frequency=1)
    os.makedirs(directory, exist_ok=True)
    save_tokenizer(tok, os.path.join(directory, "tokenizer.json"))
    stream: list[int] = []
    for text in texts:
        stream += tok.encode(text).ids + [eos_id(tok)]
    n = len(stream) // (seq_len + 1)
    seqs = np.array(stream[: n * (seq_len + 1)]).reshape(n, seq_len + 1)
    writer = TokenShardWriter(directory, seq_len=seq_len, vocab_size=tok.get_vocab_size(), sequences_per_shard=16)
    writer.add(np.concatenate([seqs] * repeats), phase="main")
    files = ["tokenizer.json"]
    os.makedirs(os.path.join(directory, "heldout"), exist_ok=True)
    for pool, docs in HELDOUT.items():
        pq.write_table(pa.table({"id": [f"{pool}-{i}" for i in range(len(docs))], "text": docs}),
                       os.path.join(directory, "heldout", f"{pool}.parquet"))
        files.append(f"heldout/{pool}.parquet")
    return writer.close(extra={"tokenizer": "tokenizer.json"}, files=files)
