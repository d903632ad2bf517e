"""Causal (blocksparse or dense) attention with one entry point that picks the implementation.

Backends: "reference" (plain PyTorch, the ground truth), "sdpa" (torch SDPA), "flex" (FlexAttention with a
BlockMask), "triton" (our fused kernel), "auto" (a pattern on CUDA: triton, else flex; dense causal on CUDA and
everything on CPU: sdpa).
"""
from __future__ import annotations

import torch

from assay.kernels.block_tables import kernel_block_ok
from assay.kernels.blocksparse_pattern import BlockSparsePattern
from assay.kernels.dispatch import autocast_inputs, triton_importable

ATTENTION_BACKENDS = ("auto", "reference", "sdpa", "flex", "triton")


def _check_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects q, k, v as [B, H, T, D]; got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}; cast them, or call "
                         "attention inside torch.autocast, which casts them")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    b, hq, t, d = q.shape
    if k.shape[0] != b or k.shape[2] != t or k.shape[3] != d:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree on batch, length and head dim")
    if hq % k.shape[1]:
        raise ValueError(f"GQA needs the query heads ({hq}) to be a multiple of the kv heads ({k.shape[1]})")
    if pattern is not None and pattern.num_heads != hq:
        raise ValueError(f"BlockSparsePattern.num_heads is {pattern.num_heads} but q has {hq} query heads; "
                         f"build the pattern with num_heads={hq} (it is indexed by query head)")


def resolve_attention_backend(backend: str, device: torch.device,
                              pattern: BlockSparsePattern | None = None, window: int = 0) -> str:
    """Name the implementation `backend` means on `device` for `pattern` and sliding `window` ("auto" resolved).

    On CUDA, dense causal attention goes to SDPA's flash kernel (nothing to skip, and flash is the fastest dense
    kernel); a pattern goes to our Triton kernel when its block size suits it, else to FlexAttention. A sliding
    window on CUDA goes to FlexAttention (it skips the blocks outside the window); the Triton kernel has none.
    """
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")
    if backend == "triton" and window > 0:
        raise ValueError("the Triton attention kernel has no sliding window; use backend 'flex' or 'sdpa' for a "
                         "model with sliding_window > 0 (or 'auto', which picks one)")
    if backend != "auto":
        return backend
    if device.type != "cuda" or (pattern is None and window <= 0):
        return "sdpa"
    if window > 0:
        return "flex"
    return "triton" if triton_importable() and kernel_block_ok(pattern.block_size) else "flex"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, pattern: BlockSparsePattern | None,
              scale: float, backend: str = "auto", window: int = 0) -> torch.Tensor:
    """Causal attention: q [B, Hq, T, D], k/v [B, Hkv, T, D] -> [B, Hq, T, D]; pattern None = dense causal.
    `window` > 0: sliding-window attention as transformers' Phi3 defines it (query i sees keys j with
    0 <= i - j < window), combined with the pattern when both are given.
    Inside torch.autocast the inputs are cast to its dtype first (assay.kernels.dispatch.autocast_inputs)."""
    q, k, v = autocast_inputs(q, k, v)
    _check_shapes(q, k, v, pattern)
    if window < 0:
        raise ValueError(f"window must be >= 0 (0 = none), got {window}")
    window = window if window < q.shape[2] else 0  # a window as long as the sequence cuts nothing
    chosen = resolve_attention_backend(backend, q.device, pattern, window)
    if chosen == "reference":
        from assay.kernels.attention_reference import reference_attention
        return reference_attention(q, k, v, pattern, scale, window)
    if chosen == "sdpa":
        from assay.kernels.attention_reference import sdpa_attention
        return sdpa_attention(q, k, v, pattern, scale, window)
    if chosen == "flex":
        from assay.kernels.attention_flex import flex_attention_path
        return flex_attention_path(q, k, v, pattern, scale, window=window)
    from assay.kernels.attention_triton import triton_attention
    return triton_attention(q, k, v, pattern, scale)
