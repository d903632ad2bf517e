"""MoE SwiGLU feed-forward with one entry point: "reference" (per-expert loop), "triton" (fused), "auto".

Routing (which experts, which weights) is the caller's: this layer takes topk_ids / topk_weights as given.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from assay.kernels.dispatch import autocast_inputs, require_triton, triton_importable

if TYPE_CHECKING:
    from assay.kernels.moe_triton import MoEKernelConfig

MOE_BACKENDS = ("auto", "reference", "triton")


def _check_inputs(x, w_gate, w_up, w_down, topk_ids, topk_weights) -> None:
    if x.dim() != 2:
        raise ValueError(f"moe_ffn expects x as [N, d] (flatten batch and time first), got {tuple(x.shape)}")
    num_tokens, d_model = x.shape
    if w_gate.dim() != 3 or w_gate.shape != w_up.shape or w_gate.shape[2] != d_model:
        raise ValueError(f"w_gate and w_up must both be [E, ffn, d={d_model}], got {tuple(w_gate.shape)} and "
                         f"{tuple(w_up.shape)}")
    num_experts, ffn, _ = w_gate.shape
    if not x.dtype == w_gate.dtype == w_up.dtype == w_down.dtype:
        raise ValueError(f"x and the expert weights must share a dtype, got {x.dtype}, {w_gate.dtype}, "
                         f"{w_up.dtype}, {w_down.dtype}; cast them, or call moe_ffn inside torch.autocast")
    if tuple(w_down.shape) != (num_experts, d_model, ffn):
        raise ValueError(f"w_down must be [E, d, ffn] = {(num_experts, d_model, ffn)}, got {tuple(w_down.shape)}")
    if topk_ids.dim() != 2 or topk_ids.shape[0] != num_tokens or topk_ids.shape != topk_weights.shape:
        raise ValueError(f"topk_ids and topk_weights must both be [N={num_tokens}, k], got "
                         f"{tuple(topk_ids.shape)} and {tuple(topk_weights.shape)}")
    if topk_ids.dtype != torch.int64:
        raise ValueError(f"topk_ids must be int64 expert indices, got {topk_ids.dtype}; use topk_ids.long()")
    if topk_ids.numel() and (int(topk_ids.min()) < 0 or int(topk_ids.max()) >= num_experts):
        raise ValueError(f"topk_ids must lie in [0, {num_experts}); got values in "
                         f"[{int(topk_ids.min())}, {int(topk_ids.max())}]: check the router's expert count")


def resolve_moe_backend(backend: str, device: torch.device) -> str:
    if backend not in MOE_BACKENDS:
        raise ValueError(f"unknown MoE backend {backend!r}; choose one of {', '.join(MOE_BACKENDS)}")
    if backend != "auto":
        return backend
    return "triton" if device.type == "cuda" and triton_importable() else "reference"


def moe_ffn(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor,
            topk_ids: torch.Tensor, topk_weights: torch.Tensor, *, backend: str = "auto",
            config: MoEKernelConfig | None = None) -> torch.Tensor:
    """sum_k topk_weights * SwiGLU_expert(x) -> [N, d]; config: a moe_triton.MoEKernelConfig for "triton".
    Inside torch.autocast, x, the expert weights and topk_weights are cast to its dtype first."""
    x, w_gate, w_up, w_down, topk_weights = autocast_inputs(x, w_gate, w_up, w_down, topk_weights)
    _check_inputs(x, w_gate, w_up, w_down, topk_ids, topk_weights)
    chosen = resolve_moe_backend(backend, x.device)
    if chosen == "reference" or x.shape[0] == 0:
        from assay.kernels.moe_reference import reference_moe_ffn
        return reference_moe_ffn(x, w_gate, w_up, w_down, topk_ids, topk_weights)
    require_triton(x.device, fallback="reference")
    from assay.kernels.moe_triton import triton_moe_ffn
    return triton_moe_ffn(x, w_gate, w_up, w_down, topk_ids, topk_weights, config=config)
