"""Per-head lists of the key tiles each query tile may read (and the transpose), for the fused kernels.

The Triton kernels visit only the tiles in these lists, so their work is proportional to the pattern's
density. Dense causal attention is the pattern where every earlier tile is allowed. A kernel tile is the
pattern's block or an equal split of it: a 128-token block with head dim 128 needs more shared memory in the
backward pass than an H100 SM has (scripts/kernels_cross_compile.py), so blocks are tiled by at most 64 tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from assay.kernels.blocksparse_pattern import BlockSparsePattern


@dataclass(frozen=True)
class BlockTables:
    """Padded index lists: `kv_index[h, qb, :kv_count[h, qb]]` are the key blocks query block qb reads;
    `q_index[h, kb, :q_count[h, kb]]` are the query blocks that read key block kb (for dK/dV)."""

    block_size: int  # the kernel's tile, in tokens (the pattern block or a divisor of it)
    kv_count: torch.Tensor  # int32 [H, nqb]
    kv_index: torch.Tensor  # int32 [H, nqb, nkb]
    q_count: torch.Tensor  # int32 [H, nkb]
    q_index: torch.Tensor  # int32 [H, nkb, nqb]


#: the Triton attention kernel's largest square tile: a 128-token tile's backward at head dim 128 needs more than an
#: H100/H200 SM's shared memory (scripts/kernels_cross_compile.py; docs/kernels.md)
MAX_KERNEL_TILE = 64


def kernel_tile(block_size: int, max_tile: int = MAX_KERNEL_TILE) -> int | None:
    """The Triton kernel's square tile for a pattern block: the largest power of two that divides the block,
    capped at `max_tile`; None when that is below 16 (tl.dot's minimum), i.e. unless 16 divides the block."""
    tile = min(block_size & -block_size, max_tile)
    return tile if tile >= 16 else None


def kernel_block_ok(block_size: int) -> bool:
    """Whether the Triton kernel can tile this pattern block size (else FlexAttention serves it)."""
    return kernel_tile(block_size) is not None


def allowed_blocks(pattern: BlockSparsePattern | None, seq_len: int, num_heads: int, block_size: int,
                   device=None) -> torch.Tensor:
    """Bool [H, n, n] mask over tiles of `block_size` tokens: the pattern's (its blocks split into equal tiles
    when block_size divides the pattern's block), or dense causal when pattern is None."""
    n = -(-seq_len // block_size)
    tile = torch.arange(n, device=device)
    causal = tile.view(-1, 1) >= tile.view(1, -1)
    if pattern is None:
        return causal.unsqueeze(0).expand(num_heads, n, n)
    blocks = pattern.block_mask(pattern.num_blocks(seq_len), device=device)
    if block_size == pattern.block_size:
        return blocks
    if pattern.block_size % block_size:
        raise ValueError(f"a kernel tile of {block_size} tokens does not divide the pattern's "
                         f"{pattern.block_size}-token blocks")
    block_of = tile // (pattern.block_size // block_size)
    return blocks[:, block_of][:, :, block_of] & causal


def index_lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed column indices first (ascending), then the rest; count of allowed per row."""
    count = mask.sum(-1, dtype=torch.int32)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return count.contiguous(), order.contiguous()


_CACHE: dict[tuple, BlockTables] = {}
_CACHE_LIMIT = 32  # block tables kept per process; past it the oldest is dropped


def block_tables(pattern: BlockSparsePattern | None, seq_len: int, num_heads: int, block_size: int,
                 device) -> BlockTables:
    """Build (or reuse) the tables for one (pattern, length, tile, device); training calls this every step."""
    key = (pattern, seq_len, num_heads, block_size, str(device))
    if key in _CACHE:
        return _CACHE[key]
    mask = allowed_blocks(pattern, seq_len, num_heads, block_size, device=device)
    kv_count, kv_index = index_lists(mask)
    q_count, q_index = index_lists(mask.transpose(1, 2))
    tables = BlockTables(block_size, kv_count, kv_index, q_count, q_index)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = tables
    return tables
