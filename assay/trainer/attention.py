"""The trainer's one attention interface: causal (optionally blocksparse) GQA attention by backend name.

The kernels package owns the implementations (reference, SDPA, FlexAttention, Triton) behind
`assay.kernels.attention.attention`; this module only chooses the pattern per layer and calls it with the
backend named in the config.
"""
from __future__ import annotations

import torch
from torch import nn

from assay.kernels.attention import attention
from assay.kernels.blocksparse_pattern import BlockSparsePattern, is_dense_layer
from assay.trainer.config import ModelConfig
from assay.trainer.layers import apply_rotary


def layer_pattern(cfg: ModelConfig, layer_index: int) -> BlockSparsePattern | None:
    """The blocksparse pattern of layer `layer_index`, or None for a dense causal layer."""
    if cfg.dense_every <= 0 or is_dense_layer(layer_index, cfg.dense_every):
        return None
    return BlockSparsePattern(block_size=cfg.block_size, local_blocks=cfg.local_blocks,
                              vertical_stride=cfg.vertical_stride, num_heads=cfg.n_heads,
                              homogeneous=cfg.homogeneous_heads)


class Attention(nn.Module):
    """Fused QKV projection, RoPE, the layer's pattern (and sliding window), output projection."""

    def __init__(self, cfg: ModelConfig, layer_index: int):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, bias=cfg.bias)
        self.out = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=cfg.bias)
        self.pattern = layer_pattern(cfg, layer_index)
        self.scale = cfg.attention_scale
        self.backend = cfg.attn_backend
        self.window = cfg.sliding_window

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(
            [self.n_heads * self.head_dim, self.n_kv * self.head_dim, self.n_kv * self.head_dim], dim=-1)
        q = q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = attention(q, k, v, pattern=self.pattern, scale=self.scale, backend=self.backend, window=self.window)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))
