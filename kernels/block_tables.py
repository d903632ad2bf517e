"""Per-head lists of the key blocks each query block may read (and the transpose), for the fused kernels.

The Triton kernels visit only the blocks in these lists, so their work is proportional to the pattern's
density. Dense causal attention is the pattern where every earlier block is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.blocksparse_pattern import BlockSparsePattern


@dataclass(frozen=True)
class BlockTables:
    """Padded index lists: `kv_index[h, qb, :kv_count[h, qb]]` are the key blocks query block qb reads;
    `q_index[h, kb, :q_count[h, kb]]` are the query blocks that read key block kb (for dK/dV)."""

    block_size: int
    kv_count: torch.Tensor  # int32 [H, nqb]
    kv_index: torch.Tensor  # int32 [H, nqb, nkb]
    q_count: torch.Tensor  # int32 [H, nkb]
    q_index: torch.Tensor  # int32 [H, nkb, nqb]


def kernel_block_ok(block_size: int) -> bool:
    """The Triton kernel tiles one pattern block per program: a power of two >= 16 (tl.dot's minimum)."""
    return block_size >= 16 and block_size & (block_size - 1) == 0


def allowed_blocks(pattern: BlockSparsePattern | None, seq_len: int, num_heads: int, block_size: int,
                   device=None) -> torch.Tensor:
    """Bool [H, nb, nb] block mask: the pattern's, or dense causal when pattern is None."""
    if pattern is not None:
        return pattern.block_mask(pattern.num_blocks(seq_len), device=device)
    nb = -(-seq_len // block_size)
    idx = torch.arange(nb, device=device)
    causal = idx.view(-1, 1) >= idx.view(1, -1)
    return causal.unsqueeze(0).expand(num_heads, nb, nb)


def index_lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed column indices first (ascending), then the rest; count of allowed per row."""
    count = mask.sum(-1, dtype=torch.int32)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return count.contiguous(), order.contiguous()


_CACHE: dict[tuple, BlockTables] = {}
_CACHE_LIMIT = 32


def block_tables(pattern: BlockSparsePattern | None, seq_len: int, num_heads: int, block_size: int,
                 device) -> BlockTables:
    """Build (or reuse) the tables for one (pattern, length, device); training calls this every step."""
    key = (pattern, seq_len, num_heads, block_size, str(device))
    if key in _CACHE:
        return _CACHE[key]
    mask = allowed_blocks(pattern, seq_len, num_heads, block_size, device=device)
    kv_count, kv_index = index_lists(mask)
    q_count, q_index = index_lists(mask.transpose(1, 2))
    tables = BlockTables(pattern.block_size if pattern else block_size, kv_count, kv_index, q_count, q_index)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = tables
    return tables
