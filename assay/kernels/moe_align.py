"""Sort (token, choice) pairs by expert and pad each expert's run to the kernel's row-block size.

After alignment every row block of the grouped GEMMs belongs to exactly one expert, so a program loads one
expert's weights; padding rows hold the sentinel pair id `num_pairs` and are masked out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExpertAlignment:
    sorted_pairs: torch.Tensor  # int32 [padded]: pair id (token * top_k + choice) or num_pairs for padding
    block_expert: torch.Tensor  # int32 [padded // block_m]: the expert of each row block
    expert_offsets: torch.Tensor  # int32 [E + 1]: start of each expert's padded run
    num_pairs: int  # token x choice pairs routed (N * top_k)
    top_k: int  # experts per token
    block_m: int  # row-block size each expert's run is padded to

    @property
    def padded_rows(self) -> int:
        return self.sorted_pairs.shape[0]


def align_by_expert(topk_ids: torch.Tensor, num_experts: int, block_m: int) -> ExpertAlignment:
    """Group the pairs of `topk_ids` [N, k] by expert (stable: token order kept within an expert)."""
    flat = topk_ids.reshape(-1)
    num_pairs = flat.numel()
    counts = torch.bincount(flat, minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    offsets = torch.zeros(num_experts + 1, dtype=torch.int64, device=flat.device)
    offsets[1:] = torch.cumsum(padded, 0)
    order = torch.argsort(flat, stable=True)
    sorted_experts = flat[order]
    unpadded_start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(num_pairs, device=flat.device) - unpadded_start[sorted_experts]
    total = int(offsets[-1])
    sorted_pairs = torch.full((total,), num_pairs, dtype=torch.int32, device=flat.device)
    sorted_pairs[offsets[sorted_experts] + rank] = order.to(torch.int32)
    block_expert = torch.repeat_interleave(torch.arange(num_experts, device=flat.device, dtype=torch.int32),
                                           padded // block_m)
    return ExpertAlignment(sorted_pairs, block_expert, offsets.to(torch.int32), num_pairs, topk_ids.shape[1],
                           block_m)
