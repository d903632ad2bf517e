"""Shared helpers for the trainer tests (no tests here): a real token-shard folder built from texts."""
from __future__ import annotations

import os

import numpy as np

from assay.trainer.token_shards import TOKENIZER_FILE, TokenShardWriter, heldout_file, row_length, write_heldout
from assay.trainer.tokenizer import eos_id, save_tokenizer, train_bpe

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
    stored rows of seq_len + 1, write `repeats` copies as one phase, plus tokenizer and held-out pools."""
    tok = train_bpe(texts * 4, vocab_size=300, min_frequency=1)
    os.makedirs(directory, exist_ok=True)
    save_tokenizer(tok, os.path.join(directory, TOKENIZER_FILE))
    stream: list[int] = []
    for text in texts:
        stream += tok.encode(text).ids + [eos_id(tok)]
    row = row_length(seq_len)
    n = len(stream) // row
    seqs = np.array(stream[: n * row]).reshape(n, row)
    writer = TokenShardWriter(directory, seq_len=seq_len, vocab_size=tok.get_vocab_size(), sequences_per_shard=16)
    writer.add(np.concatenate([seqs] * repeats), phase="main")
    for pool, docs in HELDOUT.items():
        write_heldout(directory, pool, [(f"{pool}-{i}", text) for i, text in enumerate(docs)])
    files = [TOKENIZER_FILE, *(heldout_file(pool) for pool in HELDOUT)]
    return writer.close(extra={"tokenizer": TOKENIZER_FILE}, files=files)
