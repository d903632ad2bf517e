"""The decoder's dense building blocks: norms, rotary embeddings and the two gated MLPs."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig


def make_norm(cfg: ModelConfig) -> nn.Module:
    """RMSNorm (phi-3-mini) or LayerNorm with bias (phi-3-small, phi-3.5-MoE)."""
    if cfg.norm == "rms":
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE (the Llama/transformers convention); cos/sin tables built once for max_seq_len."""

    def __init__(self, head_dim: int, theta: float, max_seq_len: int):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, seq_len: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
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
