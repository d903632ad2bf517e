"""Phi-3-small conversion against an independent forward pass written from the reference definition's
layout (per-kv-group fused qkv, interleaved GEGLU, muP, blocksparse pattern by formula): random tiny
configs, both directions."""
import math

import pytest
import torch
import torch.nn.functional as F

from assay.groundwork.config import ConfigError
from assay.trainer.config import ModelConfig
from assay.trainer.convert_phi3_small import from_phi3_small, phi3_small_config, to_phi3_small
from assay.trainer.model import Decoder


def _allowed(cfg: dict, layer: int, heads: int, t: int) -> torch.Tensor:
    """Bool [H, T, T] straight from the blocksparse rule (model notes), or causal for a dense layer."""
    every = cfg["dense_attention_every_n_layers"]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    if every and (layer + 1) % every == 0:
        return causal.expand(heads, t, t)
    b, local = cfg["blocksparse_block_size"], cfg["blocksparse_num_local_blocks"]
    stride = cfg["blocksparse_vert_stride"]
    step = 0 if cfg["blocksparse_homo_head_pattern"] else max(1, stride // heads)
    i = torch.arange(t)[:, None] // b
    j = torch.arange(t)[None, :] // b
    masks = [causal & (i >= j) & (((i - j) < local) | (((j + h * step + 1) % stride) == 0)) for h in range(heads)]
    return torch.stack(masks)


def reference_forward(cfg: dict, sd: dict, tokens: torch.Tensor) -> torch.Tensor:
    """Phi3SmallForCausalLM's computation in eval mode, on the reference state dict's own names."""
    h, kv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"] // cfg["num_attention_heads"]
    m, eps, limit = h // kv, cfg["layer_norm_epsilon"], cfg["gegelu_limit"]
    b, t = tokens.shape
    x = sd["model.embed_tokens.weight"][tokens] * cfg["mup_embedding_multiplier"]
    inv = 1.0 / (cfg["rope_embedding_base"] ** (torch.arange(0, d, 2).float() / d))
    ang = torch.outer(torch.arange(t).float(), inv)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(z):
        return z * cos + torch.cat([-z[..., d // 2:], z[..., :d // 2]], -1) * sin

    scale = cfg["mup_attn_multiplier"] / d if cfg["mup_use_scaling"] else 1 / math.sqrt(d)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        y = F.layer_norm(x, (x.shape[-1],), sd[p + "input_layernorm.weight"], sd[p + "input_layernorm.bias"], eps)
        mixed = F.linear(y, sd[p + "self_attn.query_key_value.weight"], sd[p + "self_attn.query_key_value.bias"])
        mixed = mixed.view(b, t, kv, m + 2, d)
        q = mixed[:, :, :, :m].reshape(b, t, h, d).transpose(1, 2)
        k = mixed[:, :, :, m].transpose(1, 2).repeat_interleave(m, dim=1)
        v = mixed[:, :, :, m + 1].transpose(1, 2).repeat_interleave(m, dim=1)
        scores = rope(q) @ rope(k).transpose(-1, -2) * scale
        scores = scores.masked_fill(~_allowed(cfg, layer, h, t), float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + F.linear(att, sd[p + "self_attn.dense.weight"], sd[p + "self_attn.dense.bias"])
        y = F.layer_norm(x, (x.shape[-1],), sd[p + "post_attention_layernorm.weight"],
                         sd[p + "post_attention_layernorm.bias"], eps)
        up = F.linear(y, sd[p + "mlp.up_proj.weight"], sd[p + "mlp.up_proj.bias"])
        a, lin = up[..., ::2].clamp(max=limit), up[..., 1::2].clamp(-limit, limit)
        x = x + F.linear(a * torch.sigmoid(1.702 * a) * (lin + 1), sd[p + "mlp.down_proj.weight"],
                         sd[p + "mlp.down_proj.bias"])
    x = F.layer_norm(x, (x.shape[-1],), sd["model.final_layernorm.weight"], sd["model.final_layernorm.bias"], eps)
    return F.linear(x, sd["lm_head.weight"]) / cfg["mup_width_multiplier"]


def _random_reference(seed: int, *, kv: int, every: int, homo: bool, tie: bool) -> tuple[dict, dict]:
    cfg = {"model_type": "phi3small", "vocab_size": 61, "hidden_size": 32, "num_hidden_layers": 3,
           "num_attention_heads": 4, "num_key_value_heads": kv, "ff_intermediate_size": 40, "hidden_act": "gegelu",
           "gegelu_limit": 2.0, "max_position_embeddings": 64, "rope_embedding_base": 1e4, "layer_norm_epsilon": 1e-5,
           "tie_word_embeddings": tie, "mup_use_scaling": True, "mup_attn_multiplier": 1.5,
           "mup_embedding_multiplier": 10.0, "mup_width_multiplier": 8.0, "dense_attention_every_n_layers": every,
           "blocksparse_block_size": 4, "blocksparse_num_local_blocks": 2, "blocksparse_vert_stride": 3,
           "blocksparse_homo_head_pattern": homo}
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=gen) * 0.2  # noqa: E731
    d, ffn, qkv = 32, 40, (4 + 2 * kv) * 8
    sd = {"model.embed_tokens.weight": rnd(61, d), "model.final_layernorm.weight": 1 + rnd(d),
          "model.final_layernorm.bias": rnd(d)}
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"] if tie else rnd(61, d)
    for i in range(3):
        p = f"model.layers.{i}."
        sd.update({p + "input_layernorm.weight": 1 + rnd(d), p + "input_layernorm.bias": rnd(d),
                   p + "post_attention_layernorm.weight": 1 + rnd(d), p + "post_attention_layernorm.bias": rnd(d),
                   p + "self_attn.query_key_value.weight": rnd(qkv, d), p + "self_attn.query_key_value.bias": rnd(qkv),
                   p + "self_attn.dense.weight": rnd(d, d), p + "self_attn.dense.bias": rnd(d),
                   p + "mlp.up_proj.weight": rnd(2 * ffn, d) * 5, p + "mlp.up_proj.bias": rnd(2 * ffn),
                   p + "mlp.down_proj.weight": rnd(d, ffn), p + "mlp.down_proj.bias": rnd(d)})
    return cfg, sd


@pytest.mark.parametrize("kv,every,homo,tie", [(2, 2, False, True), (1, 0, False, False), (4, 3, True, True),
                                               (2, 1, False, False)])
def test_phi3_small_checkpoints_convert_both_ways_with_matching_logits(kv, every, homo, tie):
    """GQA 2 / MQA / MHA; layers alternating, all blocksparse (theirs 0), every third dense, all dense."""
    cfg, sd = _random_reference(kv + every, kv=kv, every=every, homo=homo, tie=tie)
    tokens = torch.randint(0, 61, (2, 29), generator=torch.Generator().manual_seed(1))
    ours = from_phi3_small(cfg, sd)
    with torch.no_grad():
        want = reference_forward(cfg, sd, tokens)
        assert (ours(tokens) - want).abs().max().item() < 1e-4
        dense = reference_forward({**cfg, "dense_attention_every_n_layers": 1}, sd, tokens)
        if every != 1:  # the pattern matters at this length, so matching it is a real check
            assert (dense - want).abs().max().item() > 1e-3
    for p in ours.parameters():  # new weights on our side, then back to the reference layout
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)) * 0.05)
    back_cfg, back_sd = to_phi3_small(ours)
    assert back_cfg["dense_attention_every_n_layers"] == every and set(back_sd) == set(sd)
    with torch.no_grad():
        assert (reference_forward(back_cfg, back_sd, tokens) - ours(tokens)).abs().max().item() < 1e-4


def test_configs_that_are_not_phi3_small_are_refused():
    with pytest.raises(ConfigError, match="GEGLU"):
        phi3_small_config(ModelConfig())
    with pytest.raises(ConfigError, match="rope_position_scale"):
        from_phi3_small({**_random_reference(0, kv=2, every=2, homo=False, tie=True)[0], "rope_position_scale": 2.0},
                        {})
    cfg = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40, mlp="geglu",
                      norm="layer", bias=True, sliding_window=8)
    with pytest.raises(ConfigError, match="sliding window"):
        to_phi3_small(Decoder(cfg))


SMALL = ('mlp = "geglu"\nnorm = "layer"\nbias = true\ntie_embeddings = true\nmup_attention = true\n'
         'embedding_multiplier = 10.0\nlogit_divisor = 8.0\ngeglu_limit = 2.0\n'
         'dense_every = 2\nblock_size = 4\nlocal_blocks = 2\nvertical_stride = 4\n')


def test_export_and_init_from_a_phi3_small_folder(tmp_path):
    """`assay export` writes Phi-3-small's own layout for a GEGLU/blocksparse model; the independent
    reference forward reads it with the same logits, and `assay train --init-from` reads it back."""
    import json
    import os

    from safetensors.torch import load_file
    from test_trainer_cli import _config
    from test_trainer_support import build_shards
    from typer.testing import CliRunner

    from assay.pipelines.cli import app
    from assay.trainer.checkpoint import load_checkpoint, load_trained_model

    data = str(tmp_path / "data")
    build_shards(data, seq_len=16, repeats=2)
    runner = CliRunner()
    cfg = _config(tmp_path / "run.toml", data, str(tmp_path / "out"), model_extra=SMALL, max_steps=2)
    assert runner.invoke(app, ["train", cfg]).exit_code == 0
    folder = str(tmp_path / "small")
    result = runner.invoke(app, ["export", str(tmp_path / "out"), "--out", folder])
    assert result.exit_code == 0 and "phi3small" in result.output, result.output
    with open(os.path.join(folder, "config.json")) as fh:
        ref_cfg = json.load(fh)
    assert ref_cfg["architectures"] == ["Phi3SmallForCausalLM"] and ref_cfg["dense_attention_every_n_layers"] == 2
    ours, _, _ = load_trained_model(str(tmp_path / "out"))
    tokens = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = reference_forward(ref_cfg, load_file(os.path.join(folder, "model.safetensors")), tokens)
        assert (got - ours(tokens)).abs().max().item() < 1e-4
    init = _config(tmp_path / "init.toml", data, str(tmp_path / "init"), model_extra=SMALL, max_steps=1, lr=0.0)
    result = runner.invoke(app, ["train", init, "--init-from", folder])
    assert result.exit_code == 0, result.output
    a, b = load_checkpoint(str(tmp_path / "out"))["model"], load_checkpoint(str(tmp_path / "init"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
