"""Phi-3-small's reference checkpoint layout (Phi3SmallForCausalLM, model_type "phi3small") to and from ours.

Phi-3-small ships as remote code, not as a transformers class, so this module converts the two things a
checkpoint folder holds: the config.json fields and the state dict's names and layouts. What differs:
* query_key_value rows are grouped per kv head, [q_g0 .. q_g(m-1), k_g, v_g] for each group g (so tensor
  parallel sharding keeps a group together); ours are [all q; all k; all v]. Query head g * m + i is the
  same head in both.
* dense_attention_every_n_layers = 0 means every layer is blocksparse there and every layer dense here.
* mup_width_multiplier divides the logits (our logit_divisor); mup_embedding_multiplier scales the
  embeddings; with mup_use_scaling the attention scale is mup_attn_multiplier / head_dim.
The GEGLU up projection is interleaved in both (even rows: the GELU branch), so it copies as is. The
reference also masks its tokenizer's unused "dummy" vocabulary rows to the lowest logit; ours leaves them,
so compare logits on real token ids.
"""
from __future__ import annotations

import torch

from assay.groundwork.config import ConfigError
from assay.trainer.config import ModelConfig
from assay.trainer.model import Decoder

ARCHITECTURE = "Phi3SmallForCausalLM"
MODEL_TYPE = "phi3small"


def config_from_phi3_small(ref: dict) -> ModelConfig:
    """Our ModelConfig for a Phi-3-small config.json (a dict)."""
    if ref.get("model_type") not in (None, MODEL_TYPE):
        raise ConfigError(f"not a Phi-3-small config: model_type {ref.get('model_type')!r}")
    if ref.get("hidden_act", "gegelu") != "gegelu":
        raise ConfigError(f"Phi-3-small uses hidden_act 'gegelu', got {ref.get('hidden_act')!r}")
    if float(ref.get("rope_position_scale", 1.0)) != 1.0:
        raise ConfigError("rope_position_scale != 1 (position interpolation) does not convert")
    hidden, heads, layers = int(ref["hidden_size"]), int(ref["num_attention_heads"]), int(ref["num_hidden_layers"])
    ffn = ref.get("ff_intermediate_size") or ref.get("intermediate_size")
    if not ffn:
        raise ConfigError("the config names no ff_intermediate_size; write it into config.json")
    if hidden % heads:
        raise ConfigError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    every = int(ref.get("dense_attention_every_n_layers") or 0)
    mup = bool(ref.get("mup_use_scaling", True))
    return ModelConfig(
        vocab_size=int(ref["vocab_size"]), d_model=hidden, n_layers=layers, n_heads=heads,
        n_kv_heads=int(ref["num_key_value_heads"]), ffn_dim=int(ffn), max_seq_len=int(ref["max_position_embeddings"]),
        rope_theta=float(ref.get("rope_embedding_base", 1e6)), norm="layer",
        norm_eps=float(ref.get("layer_norm_epsilon", 1e-5)), mlp="geglu", geglu_limit=float(ref.get("gegelu_limit",
                                                                                                    20.0)),
        bias=True, tie_embeddings=bool(ref.get("tie_word_embeddings", True)),
        embedding_multiplier=float(ref.get("mup_embedding_multiplier") or 1.0),
        mup_attention=mup, attn_multiplier=float(ref.get("mup_attn_multiplier", 1.0)) if mup else 1.0,
        logit_divisor=float(ref.get("mup_width_multiplier") or 1.0),
        dense_every=every if every else layers + 1,  # theirs 0 = all blocksparse; a period past the last layer
        block_size=int(ref.get("blocksparse_block_size", 64)),
        local_blocks=int(ref.get("blocksparse_num_local_blocks", 16)),
        vertical_stride=int(ref.get("blocksparse_vert_stride", 8)),
        homogeneous_heads=bool(ref.get("blocksparse_homo_head_pattern", False)),
    )


def phi3_small_config(cfg: ModelConfig) -> dict:
    """The config.json fields of the reference definition for our config; errors say what does not fit."""
    if cfg.mlp != "geglu" or cfg.norm != "layer" or not cfg.bias or cfg.lm_head_bias or cfg.n_experts:
        raise ConfigError("Phi-3-small is GEGLU, LayerNorm, biases on every projection, no lm_head bias, no experts; "
                          "this config is not that block (convert it with the phi3/phimoe/llama families)")
    if cfg.sliding_window or cfg.rope_short_factor:
        raise ConfigError("Phi-3-small has no sliding window or LongRoPE")
    if cfg.mup_attention and cfg.attn_multiplier <= 0:
        raise ConfigError("mup attention needs attn_multiplier > 0")
    if not cfg.mup_attention and cfg.attn_multiplier != 1.0:
        raise ConfigError("attn_multiplier only applies with mup_attention = true")
    every = cfg.dense_every
    every = 1 if every <= 0 else (0 if every > cfg.n_layers else every)
    return {
        "architectures": [ARCHITECTURE], "model_type": MODEL_TYPE, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "ff_intermediate_size": cfg.ffn_dim, "hidden_act": "gegelu",
        "gegelu_limit": cfg.geglu_limit, "gegelu_pad_to_256": False, "max_position_embeddings": cfg.max_seq_len,
        "rope_embedding_base": cfg.rope_theta, "rope_position_scale": 1.0, "layer_norm_epsilon": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings, "mup_use_scaling": cfg.mup_attention,
        "mup_attn_multiplier": cfg.attn_multiplier, "mup_embedding_multiplier": cfg.embedding_multiplier,
        "mup_width_multiplier": cfg.logit_divisor, "dense_attention_every_n_layers": every,
        "blocksparse_block_size": cfg.block_size, "blocksparse_num_local_blocks": cfg.local_blocks,
        "blocksparse_vert_stride": cfg.vertical_stride, "blocksparse_homo_head_pattern": cfg.homogeneous_heads,
        "blocksparse_triton_kernel_block_size": cfg.block_size, "embedding_dropout_prob": 0.0,
        "attention_dropout_prob": 0.0, "ffn_dropout_prob": 0.0,
    }


def _grouped(cfg: ModelConfig, ours: torch.Tensor) -> torch.Tensor:
    """[all q; all k; all v] rows -> per-kv-group [q.., k, v] rows (weights [rows, in] or biases [rows])."""
    g, m, d = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim
    rest = ours.shape[1:]
    q, k, v = ours.split([cfg.n_heads * d, g * d, g * d])
    parts = [q.reshape(g, m, d, *rest), k.reshape(g, 1, d, *rest), v.reshape(g, 1, d, *rest)]
    return torch.cat(parts, dim=1).reshape(-1, *rest)


def _ungrouped(cfg: ModelConfig, ref: torch.Tensor) -> torch.Tensor:
    g, m, d = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim
    rest = ref.shape[1:]
    grouped = ref.reshape(g, m + 2, d, *rest)
    q, k, v = grouped[:, :m], grouped[:, m], grouped[:, m + 1]
    return torch.cat([q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)])


def _names(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(our name, reference name) for every tensor but the fused qkv."""
    pairs = [("embed.weight", "model.embed_tokens.weight"), ("norm.weight", "model.final_layernorm.weight"),
             ("norm.bias", "model.final_layernorm.bias")]
    if not cfg.tie_embeddings:
        pairs.append(("lm_head.weight", "lm_head.weight"))
    for i in range(cfg.n_layers):
        ours, ref = f"blocks.{i}.", f"model.layers.{i}."
        for a, b in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                     ("attn.out", "self_attn.dense"), ("ffn.up", "mlp.up_proj"), ("ffn.down", "mlp.down_proj")):
            pairs += [(f"{ours}{a}.weight", f"{ref}{b}.weight"), (f"{ours}{a}.bias", f"{ref}{b}.bias")]
    return pairs


@torch.no_grad()
def to_phi3_small(model: Decoder) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json dict, state dict) in the reference layout, for a Phi-3-small style model of ours."""
    cfg = model.cfg
    config = phi3_small_config(cfg)
    ours = model.state_dict()
    state = {ref: ours[name].clone() for name, ref in _names(cfg)}
    if cfg.tie_embeddings:
        state["lm_head.weight"] = ours["embed.weight"].clone()
    for i in range(cfg.n_layers):
        for kind in ("weight", "bias"):
            state[f"model.layers.{i}.self_attn.query_key_value.{kind}"] = _grouped(cfg,
                                                                                   ours[f"blocks.{i}.attn.qkv.{kind}"])
    return config, state


@torch.no_grad()
def from_phi3_small(config: dict, state: dict[str, torch.Tensor]) -> Decoder:
    """Our Decoder carrying a Phi-3-small checkpoint's weights (state: the reference names)."""
    cfg = config_from_phi3_small(config)
    dtype = state["model.embed_tokens.weight"].dtype
    model = Decoder(cfg).to(dtype)
    ours = model.state_dict()
    missing = [ref for _, ref in _names(cfg) if ref not in state]
    if missing:
        raise ConfigError(f"the Phi-3-small state dict lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    for name, ref in _names(cfg):
        ours[name].copy_(state[ref])
    for i in range(cfg.n_layers):
        for kind in ("weight", "bias"):
            ours[f"blocks.{i}.attn.qkv.{kind}"].copy_(
                _ungrouped(cfg, state[f"model.layers.{i}.self_attn.query_key_value.{kind}"]))
    return model.eval()


def save_phi3_small_folder(model: Decoder, folder: str) -> int:
    """Write config.json and model.safetensors in the reference layout; returns the parameter count. The
    folder has no modeling code: loading it with transformers needs Phi-3-small's remote code files."""
    import json
    import os

    from safetensors.torch import save_file

    config, state = to_phi3_small(model)
    config["auto_map"] = {"AutoConfig": "configuration_phi3_small.Phi3SmallConfig",
                          "AutoModelForCausalLM": "modeling_phi3_small.Phi3SmallForCausalLM"}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})
    return sum(v.numel() for k, v in state.items() if not (config["tie_word_embeddings"] and k == "lm_head.weight"))


def is_phi3_small_folder(folder: str) -> bool:
    import json
    import os

    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as fh:
        return json.load(fh).get("model_type") == MODEL_TYPE


def load_phi3_small_folder(folder: str) -> Decoder:
    """Our Decoder from a Phi-3-small checkpoint folder (config.json and *.safetensors)."""
    import glob
    import json
    import os

    from safetensors.torch import load_file

    with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise ConfigError(f"{folder} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(path))
    return from_phi3_small(config, {k: v.float() for k, v in state.items()})
