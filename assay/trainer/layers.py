"""The decoder's dense building blocks: norms, rotary embeddings and the two gated MLPs."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from assay.trainer.config import ModelConfig


def make_norm(cfg: ModelConfig) -> nn.Module:
    """RMSNorm (phi-3-mini) or LayerNorm with bias (phi-3-small, phi-3.5-MoE)."""
    if cfg.norm == "rms":
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE (the Llama/transformers convention); cos/sin tables built once for max_seq_len.

    With LongRoPE factors (transformers' "longrope"), the frequencies are divided by the short factors for a
    sequence of at most `original_max_seq_len` tokens and by the long factors for a longer one (the whole
    sequence uses one set, as transformers chooses by the current length), and cos/sin are scaled by the
    attention factor."""

    def __init__(self, head_dim: int, theta: float, max_seq_len: int, short_factor=(), long_factor=(),
                 original_max_seq_len: int = 0, attention_factor: float = 0.0, short_mscale: float = 0.0,
                 long_mscale: float = 0.0):
        super().__init__()
        self.original = original_max_seq_len if short_factor else 0
        base = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        positions = torch.arange(max_seq_len, dtype=torch.float32)
        scale = 1.0
        if self.original:
            factor = max_seq_len / self.original
            scale = attention_factor or (1.0 if factor <= 1.0
                                          else math.sqrt(1 + math.log(factor) / math.log(self.original)))
        for name, factors, mscale in (("", short_factor, short_mscale), ("long_", long_factor, long_mscale)):
            if name and not self.original:
                continue
            inv_freq = base / torch.tensor(factors, dtype=torch.float32) if self.original else base
            emb = torch.cat((torch.outer(positions, inv_freq),) * 2, dim=-1)
            self.register_buffer(f"{name}cos", emb.cos() * (mscale or scale), persistent=False)
            self.register_buffer(f"{name}sin", emb.sin() * (mscale or scale), persistent=False)

    def forward(self, seq_len: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self.original and seq_len > self.original:
            return self.long_cos[:seq_len].to(dtype), self.long_sin[:seq_len].to(dtype)
        return self.cos[:seq_len].to(dtype), self.sin[:seq_len].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, D]; cos/sin [T, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class SwiGLU(nn.Module):
    """silu(gate) * up, with gate and up in one fused projection: rows [gate; up] (transformers' Phi3 layout)."""

    def __init__(self, cfg: ModelConfig, ffn_dim: int | None = None):
        super().__init__()
        self.ffn_dim = ffn_dim or cfg.ffn_dim
        self.gate_up = nn.Linear(cfg.d_model, 2 * self.ffn_dim, bias=cfg.bias)
        self.down = nn.Linear(self.ffn_dim, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def gegelu(h: torch.Tensor, limit: float) -> torch.Tensor:
    """Phi-3-small's GEGLU on an interleaved projection: even channels -> quick-GELU branch (clamped above at
    `limit`), odd channels -> linear branch (clamped to [-limit, limit]); quick_gelu(a) * (b + 1)."""
    a, b = h[..., 0::2], h[..., 1::2]
    a = a.clamp(max=limit)
    b = b.clamp(min=-limit, max=limit)
    return a * torch.sigmoid(1.702 * a) * (b + 1)


class GeGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.limit = cfg.geglu_limit
        self.up = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=cfg.bias)
        self.down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(gegelu(self.up(x), self.limit))
