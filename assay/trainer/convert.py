"""Weights to and from transformers' LlamaForCausalLM, Phi3ForCausalLM and PhimoeForCausalLM.

Our decoder keeps fused projections (qkv; [gate; up]); conversion splits or concatenates them. Families:
"llama" and "phi3" are the phi-3-mini block (RMSNorm, SwiGLU), "phimoe" the MoE block (LayerNorm, experts).
Phi-3-small's own architecture (GEGLU, muP, blocksparse) has no transformers class, so it is not here.
"""
from __future__ import annotations

import torch

from assay.groundwork.config import ConfigError
from assay.trainer.config import ModelConfig
from assay.trainer.model import Decoder

FAMILIES = ("llama", "phi3", "phimoe")


def _family_of(hf_model) -> str:
    name = type(hf_model).__name__
    for family, cls in (("llama", "LlamaForCausalLM"), ("phi3", "Phi3ForCausalLM"), ("phimoe", "PhimoeForCausalLM")):
        if name == cls:
            return family
    raise ConfigError(f"cannot convert {name}: supported are LlamaForCausalLM, Phi3ForCausalLM, PhimoeForCausalLM")


def config_from_hf(hf_config, family: str) -> ModelConfig:
    c = hf_config
    common = dict(vocab_size=c.vocab_size, d_model=c.hidden_size, n_layers=c.num_hidden_layers,
                  n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads, ffn_dim=c.intermediate_size,
                  max_seq_len=c.max_position_embeddings, rope_theta=float(c.rope_parameters["rope_theta"]),
                  norm_eps=c.rms_norm_eps, tie_embeddings=bool(c.tie_word_embeddings))
    if getattr(c, "head_dim", None) not in (None, c.hidden_size // c.num_attention_heads):
        raise ConfigError("head_dim != hidden_size / num_attention_heads is not supported by assay's decoder")
    rope = c.rope_parameters
    if rope.get("rope_type", "default") not in ("default", "longrope") or rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ConfigError(f"RoPE type {rope.get('rope_type')!r} "
                          f"(partial factor {rope.get('partial_rotary_factor', 1.0)})"
                          " does not convert: assay has default and LongRoPE, full rotary")
    if rope.get("rope_type") == "longrope":
        original = rope.get("original_max_position_embeddings") or getattr(c, "original_max_position_embeddings", 0)
        factor = rope.get("factor")
        attention = rope.get("attention_factor")
        if factor is not None and attention is None and original and factor != c.max_position_embeddings / original:
            raise ConfigError("a LongRoPE 'factor' that differs from max_position_embeddings / "
                              "original_max_position_embeddings is not supported; set attention_factor explicitly")
        common.update(rope_short_factor=[float(x) for x in rope["short_factor"]],
                      rope_long_factor=[float(x) for x in rope["long_factor"]],
                      rope_original_max_seq_len=int(original), rope_attention_factor=float(attention or 0.0))
        if family == "phimoe":  # transformers' PhimoeRotaryEmbedding: always the short factors, and
            short, long = rope.get("short_mscale"), rope.get("long_mscale")  # short/long_mscale by length
            if not short or not long:
                raise ConfigError("a PhiMoE LongRoPE config needs short_mscale and long_mscale")
            common.update(rope_long_factor=list(common["rope_short_factor"]), rope_short_mscale=float(short),
                          rope_long_mscale=float(long))
    window = getattr(c, "sliding_window", None) or 0
    if window and window < c.max_position_embeddings:  # shorter than the context: it changes the logits
        common["sliding_window"] = int(window)
    if family == "llama":
        if bool(c.attention_bias) != bool(c.mlp_bias):
            raise ConfigError("Llama configs with attention_bias != mlp_bias are not supported")
        return ModelConfig(norm="rms", bias=bool(c.attention_bias), **common)
    if family == "phi3":
        return ModelConfig(norm="rms", **common)
    return ModelConfig(norm="layer", bias=bool(c.attention_bias), lm_head_bias=bool(c.lm_head_bias),
                       n_experts=c.num_local_experts, top_k=c.num_experts_per_tok, router="sparsemixer",
                       router_jitter=c.router_jitter_noise, input_jitter=c.input_jitter_noise, **common)


def hf_config_from(cfg: ModelConfig, family: str):
    """The transformers config for our config in `family`; errors say which feature does not fit."""
    if family not in FAMILIES:
        raise ConfigError(f"family must be one of {FAMILIES}, got {family!r}")
    if cfg.mlp != "swiglu" or cfg.dense_every or cfg.mup_attention or cfg.embedding_multiplier != 1.0 \
            or cfg.logit_divisor != 1.0:
        raise ConfigError("GEGLU, blocksparse and muP (phi-3-small) have no transformers class; "
                          "convert a phi-3-mini or MoE style config")
    if (family == "phimoe") != (cfg.n_experts > 0) or (family == "phimoe") != (cfg.norm == "layer"):
        raise ConfigError(f"family {family!r} does not match the config (phimoe <=> experts and LayerNorm)")
    common = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                  num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
                  intermediate_size=cfg.ffn_dim, max_position_embeddings=cfg.max_seq_len,
                  rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                  rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings, pad_token_id=None)
    if cfg.rope_short_factor:
        if family == "llama":
            raise ConfigError("assay converts LongRoPE to Phi3 or PhiMoE; choose family 'phi3' or 'phimoe'")
        if family == "phimoe" and (cfg.rope_short_factor != cfg.rope_long_factor or not cfg.rope_short_mscale
                                   or not cfg.rope_long_mscale):
            raise ConfigError("PhimoeForCausalLM's LongRoPE uses its short factors at every length and scales by "
                              "short/long mscale: set rope_long_factor = rope_short_factor and both rope_*_mscale")
        if family == "phi3" and (cfg.rope_short_mscale or cfg.rope_long_mscale):
            raise ConfigError("Phi3ForCausalLM's LongRoPE has no mscale; set rope_short_mscale = rope_long_mscale = 0")
        common["rope_parameters"] = {"rope_type": "longrope", "rope_theta": cfg.rope_theta,
                                     "short_factor": list(cfg.rope_short_factor),
                                     "long_factor": list(cfg.rope_long_factor),
                                     "original_max_position_embeddings": cfg.rope_original_max_seq_len}
        if family == "phimoe":
            common["rope_parameters"].update(short_mscale=cfg.rope_short_mscale, long_mscale=cfg.rope_long_mscale)
        if cfg.rope_attention_factor:
            common["rope_parameters"]["attention_factor"] = cfg.rope_attention_factor
        common["original_max_position_embeddings"] = cfg.rope_original_max_seq_len
    if cfg.sliding_window:
        if family == "llama":
            raise ConfigError("LlamaForCausalLM has no sliding window; set [model] sliding_window = 0")
        common["sliding_window"] = cfg.sliding_window
    if family == "llama":
        from transformers import LlamaConfig

        if cfg.lm_head_bias:
            raise ConfigError("LlamaForCausalLM has no lm_head bias")
        return LlamaConfig(attention_bias=cfg.bias, mlp_bias=cfg.bias, **common)
    if family == "phi3":
        from transformers import Phi3Config

        if cfg.bias or cfg.lm_head_bias:
            raise ConfigError("Phi3ForCausalLM has no biases; set bias = false")
        return Phi3Config(**common)
    from transformers import PhimoeConfig

    if cfg.router != "sparsemixer" or cfg.top_k != 2:
        raise ConfigError("PhimoeForCausalLM routes with SparseMixer top-2; set router = 'sparsemixer', top_k = 2")
    return PhimoeConfig(attention_bias=cfg.bias, lm_head_bias=cfg.lm_head_bias, num_local_experts=cfg.n_experts,
                        num_experts_per_tok=cfg.top_k, router_jitter_noise=cfg.router_jitter,
                        input_jitter_noise=cfg.input_jitter, **common)


def _mapping(cfg: ModelConfig, family: str, i: int) -> list[tuple[str, list[str], int]]:
    """(our name, [hf names to concatenate], concat dim) for layer i."""
    ours, hf = f"blocks.{i}.", f"model.layers.{i}."
    rows = [(ours + "attn_norm.weight", [hf + "input_layernorm.weight"], 0),
            (ours + "ffn_norm.weight", [hf + "post_attention_layernorm.weight"], 0),
            (ours + "attn.out.weight", [hf + "self_attn.o_proj.weight"], 0)]
    if cfg.norm == "layer":
        rows += [(ours + "attn_norm.bias", [hf + "input_layernorm.bias"], 0),
                 (ours + "ffn_norm.bias", [hf + "post_attention_layernorm.bias"], 0)]
    suffixes = ["weight", "bias"] if cfg.bias else ["weight"]
    for s in suffixes:
        if family == "phi3":
            rows.append((ours + f"attn.qkv.{s}", [hf + f"self_attn.qkv_proj.{s}"], 0))
        else:
            rows.append((ours + f"attn.qkv.{s}", [hf + f"self_attn.{p}_proj.{s}" for p in "qkv"], 0))
    if cfg.bias:
        rows.append((ours + "attn.out.bias", [hf + "self_attn.o_proj.bias"], 0))
    if family == "phimoe":
        rows += [(ours + "ffn.router.weight", [hf + "mlp.router.weight"], 0),
                 (ours + "ffn.w_gate+w_up", [hf + "mlp.experts.gate_up_proj"], 1),
                 (ours + "ffn.w_down", [hf + "mlp.experts.down_proj"], 0)]
        return rows
    for s in suffixes:
        if family == "phi3":
            rows.append((ours + f"ffn.gate_up.{s}", [hf + f"mlp.gate_up_proj.{s}"], 0))
        else:
            rows.append((ours + f"ffn.gate_up.{s}", [hf + f"mlp.gate_proj.{s}", hf + f"mlp.up_proj.{s}"], 0))
        rows.append((ours + f"ffn.down.{s}", [hf + f"mlp.down_proj.{s}"], 0))
    return rows


def _all_rows(cfg: ModelConfig, family: str):
    rows = [("embed.weight", ["model.embed_tokens.weight"], 0), ("norm.weight", ["model.norm.weight"], 0)]
    if cfg.norm == "layer":
        rows.append(("norm.bias", ["model.norm.bias"], 0))
    if not cfg.tie_embeddings:
        rows.append(("lm_head.weight", ["lm_head.weight"], 0))
    if cfg.lm_head_bias:
        rows.append(("lm_head.bias", ["lm_head.bias"], 0))
    for i in range(cfg.n_layers):
        rows += _mapping(cfg, family, i)
    return rows


@torch.no_grad()
def from_hf(hf_model) -> Decoder:
    """Our Decoder with the weights of a transformers model (same dtype as the source)."""
    family = _family_of(hf_model)
    cfg = config_from_hf(hf_model.config, family)
    src = hf_model.state_dict()
    model = Decoder(cfg).to(next(hf_model.parameters()).dtype)
    ours = model.state_dict()
    for name, hf_names, dim in _all_rows(cfg, family):
        value = torch.cat([src[n] for n in hf_names], dim=dim) if len(hf_names) > 1 else src[hf_names[0]]
        if name.endswith("w_gate+w_up"):
            prefix = name[: -len("w_gate+w_up")]
            gate, up = value.chunk(2, dim=1)
            ours[prefix + "w_gate"].copy_(gate)
            ours[prefix + "w_up"].copy_(up)
        else:
            ours[name].copy_(value)
    return model.eval()


@torch.no_grad()
def to_hf(model: Decoder, family: str):
    """A transformers model of `family` carrying our weights."""
    from transformers import AutoModelForCausalLM

    cfg = model.cfg
    hf_config = hf_config_from(cfg, family)
    hf_model = AutoModelForCausalLM.from_config(hf_config).to(next(model.parameters()).dtype)
    ours = model.state_dict()
    target = hf_model.state_dict()
    for name, hf_names, dim in _all_rows(cfg, family):
        if name.endswith("w_gate+w_up"):
            prefix = name[: -len("w_gate+w_up")]
            value = torch.cat([ours[prefix + "w_gate"], ours[prefix + "w_up"]], dim=1)
        else:
            value = ours[name]
        sizes = [target[n].shape[dim] for n in hf_names]
        for n, part in zip(hf_names, value.split(sizes, dim=dim)):
            target[n].copy_(part)
    return hf_model.eval()
