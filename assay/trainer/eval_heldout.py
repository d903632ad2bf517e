"""Held-out loss and bits-per-byte per pool, on the documents `assay mix` set aside (never trained on).

Each document is scored as it appears in training: after the end-of-text token that precedes every
document, in windows of at most seq_len tokens. Every token of the text is predicted once, so
bits-per-byte = (summed NLL in nats) / ln 2 / (UTF-8 bytes of the text), comparable across tokenizers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from assay.trainer.token_shards import heldout_pools, read_heldout, row_length


def windows(ids: list[int], seq_len: int) -> list[list[int]]:
    """Non-overlapping windows of at most one stored row (seq_len + 1 tokens) that together predict ids[1:]
    exactly once."""
    return [ids[start:start + row_length(seq_len)] for start in range(0, len(ids) - 1, seq_len)]


@torch.no_grad()
def windows_nll(model, chunks: list[list[int]], device, batch_size: int = 8) -> float:
    """Summed next-token NLL (nats) over windows, batched with right padding (padded targets ignored)."""
    total = 0.0
    for i in range(0, len(chunks), batch_size):
        batch = chunks[i:i + batch_size]
        width = max(len(c) for c in batch)
        tokens = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.full((len(batch), width - 1), -100, dtype=torch.long)
        for row, chunk in enumerate(batch):
            tokens[row, :len(chunk)] = torch.tensor(chunk)
            targets[row, :len(chunk) - 1] = torch.tensor(chunk[1:])
        logits = model(tokens[:, :-1].to(device)).float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).to(device),
                                 ignore_index=-100, reduction="sum").item()
    return total


@torch.no_grad()
def heldout_metrics(model, tokenizer, directory: str, seq_len: int, eos_id: int, device,
                    max_docs: int = 200, batch_size: int = 8) -> dict[str, dict[str, float]]:
    """{pool: {loss, bits_per_byte, tokens, bytes, documents, skipped_empty}} for every held-out pool of
    `directory` (a token-shard folder, or a folder of eval sets written alike)."""
    was_training = model.training
    model.eval()
    results = {}
    for pool, path in heldout_pools(directory).items():
        texts = read_heldout(path, max_docs)
        chunks, tokens, nbytes, docs, empty = [], 0, 0, 0, 0
        for text in texts:
            if not text:
                empty += 1
                continue
            ids = [eos_id] + tokenizer.encode(text).ids
            chunks += windows(ids, seq_len)
            tokens, nbytes, docs = tokens + len(ids) - 1, nbytes + len(text.encode("utf-8")), docs + 1
        nll = windows_nll(model, chunks, device, batch_size)
        results[pool] = {"loss": nll / tokens if tokens else float("nan"),
                         "bits_per_byte": nll / math.log(2) / nbytes if nbytes else float("nan"),
                         "tokens": tokens, "bytes": nbytes, "documents": docs, "skipped_empty": empty}
    model.train(was_training)
    return results
