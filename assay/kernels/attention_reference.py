"""Plain PyTorch attention paths: the ground-truth reference and torch SDPA, both from the pattern's token mask."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from assay.kernels.blocksparse_pattern import BlockSparsePattern


@functools.lru_cache(maxsize=8)
def token_mask(pattern: BlockSparsePattern | None, seq_len: int, device, window: int = 0) -> torch.Tensor:
    """Bool [H or 1, T, T]: the pattern's token mask, or the causal mask when pattern is None; with a
    sliding `window` (> 0), query i also sees only keys j with i - j < window (transformers' Phi3 rule).

    Cached: a training step asks for the same mask in every layer.
    """
    if pattern is not None:
        mask = pattern.token_mask(seq_len, device=device)
    else:
        mask = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril().unsqueeze(0)
    if window > 0:
        pos = torch.arange(seq_len, device=device)
        mask = mask & ((pos[:, None] - pos[None, :]) < window).unsqueeze(0)
    return mask


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                        scale: float, window: int = 0) -> torch.Tensor:
    """Softmax attention in fp32 with an explicit mask; slow and memory-hungry, but obviously right."""
    group = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    scores = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale
    mask = token_mask(pattern, q.shape[2], q.device, window)
    scores = scores.masked_fill(~mask.unsqueeze(0), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), vf).to(q.dtype)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                   scale: float, window: int = 0) -> torch.Tensor:
    """torch SDPA: is_causal for dense (flash/efficient kernels), a boolean mask for a pattern or a window
    that cuts into the sequence (a window at least as long as the sequence is plain causal attention)."""
    gqa = q.shape[1] != k.shape[1]
    window = window if 0 < window < q.shape[2] else 0
    if pattern is None and not window:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    mask = token_mask(pattern, q.shape[2], q.device, window).unsqueeze(0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
