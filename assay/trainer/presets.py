"""Named model presets from about 1M to about 1B parameters (their sizes and costs: sizing.py)."""
from __future__ import annotations

import dataclasses

from assay.groundwork.config import ConfigError
from assay.trainer.config import ModelConfig

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
    """A copy of the preset `name` (ConfigError listing the presets when there is none of that name)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])
