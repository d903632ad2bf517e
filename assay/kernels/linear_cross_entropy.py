"""Cross-entropy of a linear head without materialising the [N, V] logits (Liger-style, in chunks).

The forward pass walks the rows in chunks: logits of one chunk, their loss, and straight away their gradients
wrt the hidden states and the head weight; the backward pass only scales those stored gradients. Peak memory
is one [chunk, V] block instead of the full logits plus their gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LinearCrossEntropyConfig:
    """How the fused loss walks its rows and which targets it counts."""

    chunk_rows: int = 1024  # rows whose [chunk_rows, V] logits exist at once (the memory the fusion saves)
    ignore_index: int = -100  # targets with this id add no loss (torch's cross_entropy default)
    logit_scale: float = 1.0  # logits = (hidden @ weight.T) * logit_scale (muP divides by the width multiplier)
    reduction: str = "mean"  # "mean" over non-ignored targets, or "sum"


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, cfg: LinearCrossEntropyConfig):
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        valid = targets != cfg.ignore_index
        count = valid.sum()
        denom = count.clamp(min=1).float() if cfg.reduction == "mean" else torch.ones((), device=hidden.device)
        total = torch.zeros((), device=hidden.device, dtype=torch.float32)
        grad_hidden = torch.zeros_like(hidden) if need_grad else None
        grad_weight = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32) if need_grad else None
        for start in range(0, hidden.shape[0], cfg.chunk_rows):
            h = hidden[start:start + cfg.chunk_rows]
            t = targets[start:start + cfg.chunk_rows]
            ok = valid[start:start + cfg.chunk_rows]
            logits = (h @ weight.T).float()
            if cfg.logit_scale != 1.0:
                logits.mul_(cfg.logit_scale)
            lse = torch.logsumexp(logits, dim=-1)
            safe_t = torch.where(ok, t, torch.zeros_like(t))
            picked = logits.gather(1, safe_t.unsqueeze(1)).squeeze(1)
            total += torch.where(ok, lse - picked, torch.zeros_like(lse)).sum()
            if need_grad:
                grad = logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place of the logits
                grad.scatter_add_(1, safe_t.unsqueeze(1), -torch.ones_like(lse).unsqueeze(1))
                grad.mul_(ok.unsqueeze(1) * (cfg.logit_scale / denom))
                grad = grad.to(hidden.dtype)
                grad_hidden[start:start + cfg.chunk_rows] = grad @ weight
                grad_weight.add_(grad.T @ h)  # low-precision GEMM, fp32 running sum
                del grad
            del logits  # free this chunk's [chunk, V] block before the next one is allocated
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype) if need_grad else None)
        return total / denom

    @staticmethod
    def backward(ctx, grad_out):
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = grad_hidden * grad_out.to(grad_hidden.dtype) if grad_hidden is not None else None
        gw = grad_weight * grad_out.to(grad_weight.dtype) if grad_weight is not None else None
        return gh, gw, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                         config: LinearCrossEntropyConfig | None = None) -> torch.Tensor:
    """Scalar loss of softmax(hidden @ weight.T * scale) against targets, computed chunk by chunk.

    hidden [N, d] (flatten batch and time first), weight [V, d], targets [N] int64 (ignore_index skipped).
    """
    cfg = config or LinearCrossEntropyConfig()
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"expected hidden [N, d] and weight [V, d], got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}; flatten batch and time with hidden.reshape(-1, d)")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"targets must be [N={hidden.shape[0]}], got {tuple(targets.shape)}")
    if cfg.reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {cfg.reduction!r}")
    if cfg.chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {cfg.chunk_rows}")
    bad = (targets != cfg.ignore_index) & ((targets < 0) | (targets >= weight.shape[0]))
    if bool(bad.any()):
        raise ValueError(f"targets must lie in [0, {weight.shape[0]}) or equal ignore_index={cfg.ignore_index}; "
                         f"found {int(targets[bad][0])}: check the tokenizer's vocab size against the head")
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, cfg)
