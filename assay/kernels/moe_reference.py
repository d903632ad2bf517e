"""Per-expert loop MoE SwiGLU in plain PyTorch: the ground truth for the fused kernel and its speed peer."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_moe_ffn(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor,
                      topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> torch.Tensor:
    """sum_k weight * (silu(x Wg[e]^T) * (x Wu[e]^T)) Wd[e]^T, one expert at a time."""
    out = torch.zeros_like(x)
    for expert in range(w_gate.shape[0]):
        token, slot = (topk_ids == expert).nonzero(as_tuple=True)
        if token.numel() == 0:
            continue
        xe = x[token]
        hidden = F.silu(xe @ w_gate[expert].T) * (xe @ w_up[expert].T)
        routed = (hidden @ w_down[expert].T) * topk_weights[token, slot].unsqueeze(-1).to(x.dtype)
        out = out.index_add(0, token, routed)
    return out
