"""Plain PyTorch attention paths: the ground-truth reference and torch SDPA, both from the pattern's token mask."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from kernels.blocksparse_pattern import BlockSparsePattern


@functools.lru_cache(maxsize=8)
def token_mask(pattern: BlockSparsePattern | None, seq_len: int, device) -> torch.Tensor:
    """Bool [H or 1, T, T]: the pattern's token mask, or the causal mask when pattern is None.

    Cached: a training step asks for the same mask in every layer.
    """
    if pattern is not None:
        return pattern.token_mask(seq_len, device=device)
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril().unsqueeze(0)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                        scale: float) -> torch.Tensor:
    """Softmax attention in fp32 with an explicit mask; slow and memory-hungry, but obviously right."""
    group = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    scores = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale
    mask = token_mask(pattern, q.shape[2], q.device)
    scores = scores.masked_fill(~mask.unsqueeze(0), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), vf).to(q.dtype)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                   scale: float) -> torch.Tensor:
    """torch SDPA: is_causal for dense (flash/efficient kernels), a boolean mask for a pattern."""
    gqa = q.shape[1] != k.shape[1]
    if pattern is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    mask = token_mask(pattern, q.shape[2], q.device).unsqueeze(0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
