"""The size and cost of a model config: parameters (total, embedding, active per token) and training FLOPs.

Parameter counts come from building the model on the meta device (no memory, always in sync with the
code). Training FLOPs per token = 6 x (active matmul parameters, lm_head included) + 12 x (query width) x
(keys attended per query, averaged over positions and heads) per layer: the PaLM formula with the causal
and blocksparse masks taken into account.
"""
from __future__ import annotations

import torch

from assay.trainer.attention import layer_pattern
from assay.trainer.config import ModelConfig
from assay.trainer.model import Decoder


def _meta_model(cfg: ModelConfig) -> Decoder:
    """The model with shapes only: no memory, no initialisation."""
    with torch.device("meta"):
        return Decoder(cfg)


def parameter_count(cfg: ModelConfig) -> dict[str, int]:
    """total (tied weights once), embedding, and active per token (MoE: only top_k of n_experts)."""
    model = _meta_model(cfg)
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding = model.embed.weight.numel()
    expert = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1] in ("w_gate", "w_up", "w_down"))
    inactive = expert * (cfg.n_experts - cfg.top_k) // cfg.n_experts if cfg.n_experts else 0
    return {"total": total, "embedding": embedding, "active": total - inactive}


def attended_keys(cfg: ModelConfig, layer_index: int, seq_len: int) -> float:
    """Mean number of keys a query reads in this layer (causal: (T + 1) / 2; blocksparse: fewer)."""
    pattern = layer_pattern(cfg, layer_index)
    if pattern is None:
        return (seq_len + 1) / 2
    return pattern.density(seq_len) * (seq_len + 1) / 2


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Training (forward + backward) FLOPs per token."""
    seq_len = seq_len or cfg.max_seq_len
    counts = parameter_count(cfg)
    matmul = counts["active"] - counts["embedding"] + (counts["embedding"] if cfg.tie_embeddings else 0)
    matmul -= _non_matmul_params(cfg)
    attn = sum(12 * cfg.n_heads * cfg.head_dim * attended_keys(cfg, i, seq_len) for i in range(cfg.n_layers))
    return 6.0 * matmul + attn


def _non_matmul_params(cfg: ModelConfig) -> int:
    """Norm gains/biases and linear biases: parameters that cost no multiply-accumulate per token."""
    return sum(p.numel() for p in _meta_model(cfg).parameters() if p.ndim == 1)


def describe(cfg: ModelConfig, seq_len: int | None = None) -> str:
    """One line for logs: parameters (active, embedding) and training MFLOPs per token."""
    counts = parameter_count(cfg)
    return (f"{counts['total'] / 1e6:.2f}M parameters ({counts['active'] / 1e6:.2f}M active, "
            f"{counts['embedding'] / 1e6:.2f}M embedding), {flops_per_token(cfg, seq_len) / 1e6:.1f} MFLOPs/token")
