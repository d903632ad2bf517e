"""Named model presets from about 1M to about 1B parameters, and their size and cost.

Parameter counts come from building the model on the meta device (no memory, always in sync with the
code). Training FLOPs per token = 6 x (active matmul parameters, lm_head included) + 12 x (query width) x
(keys attended per query, averaged over positions and heads) per layer: the PaLM formula with the causal
and blocksparse masks taken into account.
"""
from __future__ import annotations

import dataclasses

import torch

from trainer.attention import layer_pattern
from trainer.config import ConfigError, ModelConfig

_SMALL = dict(norm="layer", mlp="geglu", bias=True, tie_embeddings=True, rope_theta=1e6,
              embedding_multiplier=10.0, mup_attention=True, attn_multiplier=1.0, logit_divisor=8.0,
              dense_every=2, block_size=64, local_blocks=4, vertical_stride=4)
_MOE = dict(norm="layer", n_experts=8, top_k=2, router="sparsemixer", bias=True, rope_theta=1e4)


def _mini(vocab, d, layers, heads, ffn, seq=2048, tie=False, kv=None):
    return ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv or heads,
                       ffn_dim=ffn, max_seq_len=seq, tie_embeddings=tie)


PRESETS: dict[str, ModelConfig] = {
    "mini-1m": _mini(8192, 96, 2, 4, 256, seq=512, tie=True),
    "mini-10m": _mini(8192, 256, 8, 8, 688, seq=1024),
    "mini-50m": _mini(16384, 512, 8, 8, 1376),
    "mini-150m": _mini(32064, 768, 12, 12, 2048),
    "mini-400m": _mini(32064, 1024, 24, 16, 2816),
    "mini-1b": _mini(32064, 2048, 16, 32, 5504, seq=4096),
    "small-10m": ModelConfig(vocab_size=8192, d_model=256, n_layers=10, n_heads=8, n_kv_heads=2, ffn_dim=688,
                             max_seq_len=1024, **_SMALL),
    "small-150m": ModelConfig(vocab_size=32064, d_model=768, n_layers=12, n_heads=12, n_kv_heads=4,
                              ffn_dim=2048, max_seq_len=2048, **_SMALL),
    "small-1b": ModelConfig(vocab_size=32064, d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8,
                            ffn_dim=5504, max_seq_len=4096, **{**_SMALL, "local_blocks": 16,
                                                               "vertical_stride": 8}),
    "moe-10m": ModelConfig(vocab_size=8192, d_model=160, n_layers=6, n_heads=4, n_kv_heads=2, ffn_dim=320,
                           max_seq_len=1024, **_MOE),
    "moe-300m": ModelConfig(vocab_size=32064, d_model=512, n_layers=12, n_heads=8, n_kv_heads=4,
                            ffn_dim=1024, max_seq_len=2048, **{**_MOE, "n_experts": 16}),
}


def preset_config(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])


def parameter_count(cfg: ModelConfig) -> dict[str, int]:
    """total (tied weights once), embedding, and active per token (MoE: only top_k of n_experts)."""
    from trainer.model import Decoder

    with torch.device("meta"):
        model = Decoder(cfg)
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
    from trainer.model import Decoder

    with torch.device("meta"):
        model = Decoder(cfg)
    return sum(p.numel() for n, p in model.named_parameters() if p.ndim == 1)


def describe(cfg: ModelConfig, seq_len: int | None = None) -> str:
    counts = parameter_count(cfg)
    return (f"{counts['total'] / 1e6:.2f}M parameters ({counts['active'] / 1e6:.2f}M active, "
            f"{counts['embedding'] / 1e6:.2f}M embedding), {flops_per_token(cfg, seq_len) / 1e6:.1f} MFLOPs/token")
