"""Phi-3-small's blocksparse attention pattern, defined once for the kernels and the trainer.

Each query head sees the L most recent key blocks (its local window, the diagonal block included) plus
"vertical" remote blocks every S blocks. The vertical blocks are offset per head (unless the heads are
homogeneous) so that the heads together cover every earlier block: the point of Figure 1 of the report.
Blocks count from token 0: query block qb = i // B, key block kb = j // B.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockSparsePattern:
    """The pattern's parameters (defaults: Phi-3-small's blocksparse_* settings)."""

    block_size: int = 64  # tokens per block (B)
    local_blocks: int = 16  # most recent key blocks each query block sees, its own included (L)
    vertical_stride: int = 8  # a vertical key block every this many blocks (S)
    num_heads: int = 32  # number of QUERY heads: the pattern is indexed by query head
    homogeneous: bool = False  # every head the same vertical blocks (no per-head offset)

    def __post_init__(self) -> None:
        for name in ("block_size", "local_blocks", "vertical_stride", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"BlockSparsePattern.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def head_step(self) -> int:
        """Offset between consecutive heads' vertical blocks."""
        return 0 if self.homogeneous else max(1, self.vertical_stride // self.num_heads)

    def num_blocks(self, seq_len: int) -> int:
        return -(-seq_len // self.block_size)

    def block_mask(self, num_q_blocks: int, num_k_blocks: int | None = None, device=None) -> torch.Tensor:
        """Bool [H, num_q_blocks, num_k_blocks]: True where query block qb may read key block kb."""
        num_k_blocks = num_q_blocks if num_k_blocks is None else num_k_blocks
        qb = torch.arange(num_q_blocks, device=device).view(1, -1, 1)
        kb = torch.arange(num_k_blocks, device=device).view(1, 1, -1)
        h = torch.arange(self.num_heads, device=device).view(-1, 1, 1)
        causal = qb >= kb
        local = (qb - kb) < self.local_blocks
        vertical = ((kb + h * self.head_step + 1) % self.vertical_stride) == 0
        return causal & (local | vertical)

    def token_mask(self, seq_len: int, device=None) -> torch.Tensor:
        """Bool [H, T, T]: True where query token i may attend key token j (block allowed and j <= i)."""
        nb = self.num_blocks(seq_len)
        blocks = self.block_mask(nb, nb, device=device)
        idx = torch.arange(seq_len, device=device) // self.block_size
        mask = blocks[:, idx][:, :, idx]
        i = torch.arange(seq_len, device=device)
        return mask & (i.view(-1, 1) >= i.view(1, -1))

    def density(self, seq_len: int) -> float:
        """Fraction of the causal (lower-triangular) token pairs the pattern keeps, averaged over heads."""
        mask = self.token_mask(seq_len)
        causal_pairs = seq_len * (seq_len + 1) / 2
        return float(mask.sum()) / (self.num_heads * causal_pairs)


def is_dense_layer(layer_index: int, dense_every: int) -> bool:
    """Phi-3-small alternates: layer i (0-based) is dense when (i + 1) % dense_every == 0."""
    return dense_every > 0 and (layer_index + 1) % dense_every == 0
