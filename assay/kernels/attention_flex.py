"""FlexAttention path: a BlockMask built from the same pattern, the portable option on GPUs without our kernel.

Off-diagonal allowed blocks are "full" (no per-token check); only the diagonal block runs the mask_mod, which
still states the whole rule because eager (uncompiled) FlexAttention applies the mask_mod alone.
"""
from __future__ import annotations

import warnings

import torch

from assay.kernels.block_tables import allowed_blocks, index_lists
from assay.kernels.blocksparse_pattern import BlockSparsePattern

FLEX_DENSE_BLOCK_SIZE = 128  # FlexAttention's default block size (torch's _DEFAULT_SPARSE_BLOCK_SIZE)


def pattern_mask_mod(pattern: BlockSparsePattern | None, window: int = 0):
    """The pattern's token rule as a mask_mod: the BlockMask only skips blocks, this decides each token pair.
    A sliding `window` (> 0) also requires q_idx - kv_idx < window."""
    if window > 0:
        inner = pattern_mask_mod(pattern)

        def windowed(b, h, q_idx, kv_idx):
            return inner(b, h, q_idx, kv_idx) & ((q_idx - kv_idx) < window)
        return windowed
    if pattern is None:
        def causal(b, h, q_idx, kv_idx):
            return q_idx >= kv_idx
        return causal

    size, local, stride, step = pattern.block_size, pattern.local_blocks, pattern.vertical_stride, pattern.head_step

    def blocksparse(b, h, q_idx, kv_idx):
        qb = q_idx // size
        kb = kv_idx // size
        vertical = ((kb + h * step + 1) % stride) == 0
        return (q_idx >= kv_idx) & (((qb - kb) < local) | vertical)
    return blocksparse


def flex_block_mask(pattern: BlockSparsePattern | None, seq_len: int, num_heads: int, device, window: int = 0):
    """BlockMask [1, H, nb, nb] equivalent to the pattern's token mask (dense causal for None). With a
    sliding window, blocks wholly outside it are skipped and blocks it cuts through run the mask_mod."""
    from torch.nn.attention.flex_attention import BlockMask

    block_size = pattern.block_size if pattern is not None else FLEX_DENSE_BLOCK_SIZE
    blocks = allowed_blocks(pattern, seq_len, num_heads, block_size, device=device)
    nb = blocks.shape[-1]
    diagonal = torch.eye(nb, dtype=torch.bool, device=device).unsqueeze(0)
    partial = blocks & diagonal
    if window > 0:
        qb = torch.arange(nb, device=device)[:, None]
        kb = torch.arange(nb, device=device)[None, :]
        nearest = qb * block_size - (kb * block_size + block_size - 1)  # the closest pair's distance
        farthest = qb * block_size + block_size - 1 - kb * block_size
        blocks = blocks & (nearest < window).unsqueeze(0)
        partial = blocks & (diagonal | (farthest >= window).unsqueeze(0))
    full = blocks & ~partial

    kv_num, kv_idx = (t.unsqueeze(0) for t in index_lists(partial))
    full_num, full_idx = (t.unsqueeze(0) for t in index_lists(full))
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size,
                                    mask_mod=pattern_mask_mod(pattern, window),
                                    seq_lengths=(seq_len, seq_len))


def flex_attention_path(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                        scale: float, *, compiled: bool | None = None, window: int = 0) -> torch.Tensor:
    """FlexAttention (compiled on CUDA, eager elsewhere) with the pattern's BlockMask."""
    from torch.nn.attention.flex_attention import flex_attention

    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise RuntimeError("FlexAttention has no backward pass on the CPU; use backend='sdpa' (or 'reference') "
                           "to train on the CPU, or run 'flex' under torch.no_grad()")
    mask = flex_block_mask(pattern, q.shape[2], q.shape[1], q.device, window)
    compiled = q.is_cuda if compiled is None else compiled
    gqa = q.shape[1] != k.shape[1]
    if compiled:
        # the forward tile must divide the mask's blocks (a 64-token pattern block vs a 128 default tile);
        # the backward pass already skips tile configs that do not divide them
        block = mask.BLOCK_SIZE[0]
        options = {"fwd_BLOCK_M": block, "fwd_BLOCK_N": block} if block < FLEX_DENSE_BLOCK_SIZE else None
        return _compiled_flex()(q, k, v, block_mask=mask, scale=scale, enable_gqa=gqa, kernel_options=options)
    with warnings.catch_warnings():  # eager is the intended CPU path, not an oversight
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=mask, scale=scale, enable_gqa=gqa)


_COMPILED = None


def _compiled_flex():
    global _COMPILED
    if _COMPILED is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED = torch.compile(flex_attention, dynamic=False)
    return _COMPILED
