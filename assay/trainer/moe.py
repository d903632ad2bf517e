"""The phi-3.5-MoE feed-forward: routing (SparseMixer top-2 or softmax top-k), experts, load-balance stats.

Routing lives here; the expert computation is the kernels package's `moe_ffn` (backend from the config).
"""
from __future__ import annotations

import torch
from torch import nn

from assay.kernels.moe import moe_ffn
from assay.trainer.config import ModelConfig


class _SparseMixerGradient(torch.autograd.Function):
    """Forward: weight * multiplier. Backward (SparseMixer's estimate): d scores = w * (onehot - p) * grad."""

    @staticmethod
    def forward(ctx, scores, weight, selected, probs, multiplier):
        ctx.save_for_backward(weight, selected, probs)
        return weight * multiplier

    @staticmethod
    def backward(ctx, grad):
        weight, selected, probs = ctx.saved_tensors
        grad = grad * weight
        grad_scores = -probs * grad
        grad_scores.scatter_add_(-1, selected, grad)
        return grad_scores, None, None, None, None


def _sparsemixer_pick(remaining: torch.Tensor, scores: torch.Tensor, eps: float, training: bool):
    """One SparseMixer pick among `remaining` (scores with earlier picks at -inf); the mask threshold is
    relative to the original `scores`. Returns (weight [N,1], selected [N,1])."""
    with torch.no_grad():
        top, argmax = remaining.max(dim=-1, keepdim=True)
        factor = scores.abs().clamp(min=top)
        drop = ((top - scores) / factor) > (2 * eps)
    gates = remaining.masked_fill(drop, float("-inf"))
    if training:
        gumbel = -torch.empty_like(gates).exponential_().log()
        selected = (gates + gumbel).argmax(dim=-1, keepdim=True)
    else:
        selected = argmax
    probs = torch.softmax(gates, dim=-1)
    weight = probs.gather(-1, selected)
    if training:
        is_top = selected == probs.argmax(dim=-1, keepdim=True)
        keep = is_top | (torch.rand_like(weight) > 0.75)
        multiplier = 0.3333 + 0.6667 * keep.to(probs.dtype)
        weight = _SparseMixerGradient.apply(scores, weight, selected, probs.detach(), multiplier)
    return weight, selected


def sparsemixer_top2(scores: torch.Tensor, jitter_eps: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PhiMoE's top-2 routing: weights [N, 2] (not renormalised) and expert ids [N, 2]."""
    w1, e1 = _sparsemixer_pick(scores, scores, jitter_eps, training)
    remaining = scores.scatter(-1, e1, float("-inf"))
    w2, e2 = _sparsemixer_pick(remaining, scores, jitter_eps, training)
    return torch.cat((w1, w2), dim=-1), torch.cat((e1, e2), dim=-1)


def softmax_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain routing: softmax over experts, keep the k largest, renormalise them to sum to 1."""
    probs = torch.softmax(scores, dim=-1)
    weights, ids = probs.topk(k, dim=-1)
    return weights / weights.sum(dim=-1, keepdim=True), ids


class MoEFeedForward(nn.Module):
    """Router + E SwiGLU experts. After each forward `stats` holds the layer's routing statistics."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e, f, d = cfg.n_experts, cfg.ffn_dim, cfg.d_model
        self.cfg = cfg
        self.router = nn.Linear(d, e, bias=False)
        self.w_gate = nn.Parameter(torch.empty(e, f, d))
        self.w_up = nn.Parameter(torch.empty(e, f, d))
        self.w_down = nn.Parameter(torch.empty(e, d, f))
        self.stats: dict[str, torch.Tensor] = {}

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = self.router(x)
        if self.cfg.router == "sparsemixer":
            weights, ids = sparsemixer_top2(scores, self.cfg.router_jitter, self.training)
        else:
            weights, ids = softmax_topk(scores, self.cfg.top_k)
        return scores, weights, ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if self.training and self.cfg.input_jitter > 0:
            x = x * torch.empty_like(x).uniform_(1.0 - self.cfg.input_jitter, 1.0 + self.cfg.input_jitter)
        scores, weights, ids = self.route(x)
        self.stats = load_balance(scores, ids, self.cfg.n_experts)
        y = moe_ffn(x, self.w_gate, self.w_up, self.w_down, ids, weights.to(x.dtype), backend=self.cfg.moe_backend)
        return y.reshape(shape)


def load_balance(scores: torch.Tensor, ids: torch.Tensor, n_experts: int) -> dict[str, torch.Tensor]:
    """Switch-style statistics: `load` = fraction of routed slots per expert, `aux` = E * sum(load * mean prob)
    (1.0 when perfectly balanced; differentiable through the router probabilities)."""
    counts = torch.bincount(ids.flatten(), minlength=n_experts).to(scores.dtype)
    load = counts / counts.sum().clamp(min=1)
    mean_prob = torch.softmax(scores.float(), dim=-1).mean(dim=0)
    return {"load": load.detach(), "aux": n_experts * (load.float() * mean_prob).sum()}
