"""The decoder family: transformers parity (Llama, Phi3, PhiMoE), phi-3-small against the reference
formulas, the blocksparse pattern in the model, MoE routing, presets."""
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, PhimoeConfig

from assay.groundwork.config import ConfigError
from assay.kernels.attention_reference import reference_attention
from assay.trainer.attention import layer_pattern
from assay.trainer.config import ModelConfig
from assay.trainer.convert import from_hf, to_hf
from assay.trainer.layers import gegelu
from assay.trainer.model import Decoder
from assay.trainer.moe import MoEFeedForward, load_balance, softmax_topk
from assay.trainer.presets import PRESETS
from assay.trainer.sizing import flops_per_token, parameter_count

COMMON = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, pad_token_id=None, eos_token_id=None,
              bos_token_id=None)
HF_CONFIGS = {
    "llama": lambda: LlamaConfig(**COMMON, attention_bias=True, mlp_bias=True, rope_parameters={"rope_type": "default",
                                                                                                "rope_theta": 500.0}),
    "llama-tied": lambda: LlamaConfig(**{**COMMON, "num_key_value_heads": 4}, tie_word_embeddings=True),
    "phi3": lambda: Phi3Config(**COMMON),
    "phimoe": lambda: PhimoeConfig(**COMMON, num_local_experts=4, attention_bias=True, lm_head_bias=True),
}


def _randomize(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_logits_match_transformers_both_ways(name):
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(HF_CONFIGS[name]()).float().eval()
    _randomize(hf, 1)
    ours = from_hf(hf)
    tokens = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        expected = hf(tokens).logits
        got = ours(tokens)
        assert (got - expected).abs().max().item() < 1e-4
        _randomize(ours, 2)  # new weights on our side, then back to transformers
        back = to_hf(ours, name.split("-")[0])
        assert (back(tokens).logits - ours(tokens)).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", ["phi3", "phimoe"])
def test_a_sliding_window_converts_and_matches_transformers_past_its_length(name):
    """Phi-3-mini's sliding_window (2047 of 4096) is never dropped: assay computes sliding-window attention,
    and the logits match transformers' on inputs longer than the window, for every CPU backend."""
    torch.manual_seed(0)
    hf_cfg = HF_CONFIGS[name]()
    hf_cfg.sliding_window = 16
    hf = AutoModelForCausalLM.from_config(hf_cfg).float().eval()
    _randomize(hf, 1)
    ours = from_hf(hf)
    assert ours.cfg.sliding_window == 16
    longer = torch.randint(0, 97, (2, 40))
    with torch.no_grad():
        expected = hf(longer).logits
        full_cfg = HF_CONFIGS[name]()  # the same weights without the window: past 16 tokens the logits differ
        full = AutoModelForCausalLM.from_config(full_cfg).float().eval()
        full.load_state_dict(hf.state_dict())
        diff = (full(longer).logits - expected).abs().amax(dim=(0, 2))
        assert diff[:16].max().item() < 1e-5 and diff[16:].max().item() > 1e-3  # the window matters here
        for backend in ("sdpa", "reference", "flex"):
            for block in ours.blocks:
                block.attn.backend = backend
            assert (ours(longer) - expected).abs().max().item() < 1e-4, backend
    assert to_hf(ours, name).config.sliding_window == 16
    with pytest.raises(ConfigError, match="sliding window"):
        to_hf(Decoder(ModelConfig(vocab_size=97, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, ffn_dim=48,
                                  max_seq_len=64, sliding_window=16)), "llama")


def _longrope(cfg_fn):
    """A tiny config with LongRoPE as phi-3.5 ships it: short and long factors, a 4x context extension."""
    cfg = cfg_fn()
    half = cfg.hidden_size // cfg.num_attention_heads // 2
    cfg.max_position_embeddings = 64
    cfg.original_max_position_embeddings = 16
    cfg.rope_parameters = {"rope_type": "longrope", "rope_theta": 10000.0,
                           "short_factor": [1.0 + 0.1 * i for i in range(half)],
                           "long_factor": [1.0 + 1.5 * i for i in range(half)], "original_max_position_embeddings": 16}
    return cfg


@pytest.mark.parametrize("name", ["phi3", "phimoe"])
def test_longrope_converts_and_matches_transformers_on_short_and_long_inputs(name):
    torch.manual_seed(0)
    cfg = _longrope(HF_CONFIGS[name])
    if name == "phimoe":  # phi-3.5-MoE's fields (it ships 1.243 for both)
        cfg.rope_parameters.update(short_mscale=1.1, long_mscale=1.3)
    hf = AutoModelForCausalLM.from_config(cfg).float().eval()
    _randomize(hf, 1)
    ours = from_hf(hf)
    assert ours.cfg.rope_original_max_seq_len == 16 and len(ours.cfg.rope_long_factor) == ours.cfg.head_dim // 2
    plain = AutoModelForCausalLM.from_config(HF_CONFIGS[name]()).float().eval()
    plain.load_state_dict(hf.state_dict())
    with torch.no_grad():
        for length in (12, 16, 40):  # the short factors up to 16 tokens, the long ones past it
            tokens = torch.randint(0, 97, (2, length))
            expected = hf(tokens).logits
            assert (ours(tokens) - expected).abs().max().item() < 1e-4, length
            assert (plain(tokens).logits - expected).abs().max().item() > 1e-3  # LongRoPE changes the logits
        back = to_hf(ours, name)
        assert back.config.rope_parameters["rope_type"] == "longrope"
        assert (back(tokens).logits - ours(tokens)).abs().max().item() < 1e-4
    with pytest.raises(ConfigError, match="LongRoPE"):
        ModelConfig(n_heads=4, d_model=32, rope_short_factor=[1.0], rope_long_factor=[1.0], rope_original_max_seq_len=8)
    if name == "phi3":
        with pytest.raises(ConfigError, match="'phi3' or 'phimoe'"):
            to_hf(ours, "llama")


def test_phi3_small_has_no_transformers_class():
    cfg = ModelConfig(mlp="geglu", norm="layer", bias=True, mup_attention=True)
    with pytest.raises(ConfigError, match="phi-3-small"):
        to_hf(Decoder(cfg), "phi3")


def test_gegelu_formula_by_hand():
    # interleaved: (a, b) pairs; a clamped above at 2, b clamped to [-2, 2]
    h = torch.tensor([[3.0, 5.0, -1.0, 0.5]])
    quick = lambda a: a / (1 + math.exp(-1.702 * a))  # noqa: E731
    expected = torch.tensor([[quick(2.0) * (2.0 + 1), quick(-1.0) * (0.5 + 1)]])
    assert torch.allclose(gegelu(h, limit=2.0), expected, atol=1e-6)


def _small_cfg(**kw):
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40, max_seq_len=64,
                norm="layer", mlp="geglu", geglu_limit=1.5, bias=True, tie_embeddings=True, rope_theta=1e6,
                embedding_multiplier=10.0, mup_attention=True, attn_multiplier=1.0, logit_divisor=8.0,
                dense_every=2, block_size=4, local_blocks=2, vertical_stride=4)
    return ModelConfig(**{**base, **kw})


def _rope(x, theta):
    t, d = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
    ang = torch.arange(t).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def _small_reference_forward(model: Decoder, tokens):
    """Phi-3-small written out from the model notes, with the kernels' reference attention."""
    cfg = model.cfg
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    x = F.embedding(tokens, sd["embed.weight"]) * 10.0
    hd, hq, hkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    for i in range(cfg.n_layers):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "attn_norm.weight"], sd[p + "attn_norm.bias"], 1e-5)
        qkv = h @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]
        b, t, _ = qkv.shape
        q = qkv[..., : hq * hd].view(b, t, hq, hd).transpose(1, 2)
        k = qkv[..., hq * hd: (hq + hkv) * hd].view(b, t, hkv, hd).transpose(1, 2)
        v = qkv[..., (hq + hkv) * hd:].view(b, t, hkv, hd).transpose(1, 2)
        pattern = layer_pattern(cfg, i)
        y = reference_attention(_rope(q, 1e6), _rope(k, 1e6), v, pattern, scale=1.0 / hd)  # muP: 1/d
        x = x + y.transpose(1, 2).reshape(b, t, -1) @ sd[p + "attn.out.weight"].T + sd[p + "attn.out.bias"]
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "ffn_norm.weight"], sd[p + "ffn_norm.bias"], 1e-5)
        up = h @ sd[p + "ffn.up.weight"].T + sd[p + "ffn.up.bias"]
        a, g = up[..., 0::2].clamp(max=1.5), up[..., 1::2].clamp(-1.5, 1.5)
        x = x + (a * torch.sigmoid(1.702 * a) * (g + 1)) @ sd[p + "ffn.down.weight"].T + sd[p + "ffn.down.bias"]
    x = F.layer_norm(x, (cfg.d_model,), sd["norm.weight"], sd["norm.bias"], 1e-5)
    return (x @ sd["embed.weight"].T) / 8.0  # tied embeddings, logits / width multiplier


def test_phi3_small_matches_reference_formulas():
    torch.manual_seed(0)
    cfg = _small_cfg()
    model = Decoder(cfg).eval()
    _randomize(model, 3)
    assert layer_pattern(cfg, 0) is not None and layer_pattern(cfg, 1) is None  # blocksparse, then dense
    tokens = torch.randint(0, 50, (2, 40))
    with torch.no_grad():
        expected = _small_reference_forward(model, tokens)
        for backend in ("sdpa", "reference"):
            model.blocks[0].attn.backend = backend
            assert (model(tokens) - expected).abs().max().item() < 1e-4


def test_blocksparse_layer_differs_from_dense_and_equals_dense_attention_under_its_mask():
    torch.manual_seed(0)
    cfg = _small_cfg()
    pattern = layer_pattern(cfg, 0)
    q, k, v = torch.randn(1, 4, 40, 8), torch.randn(1, 2, 40, 8), torch.randn(1, 2, 40, 8)
    sparse = Decoder(cfg).blocks[0].attn
    from assay.kernels.attention import attention

    got = attention(q, k, v, pattern=pattern, scale=0.1, backend=sparse.backend)
    mask = pattern.token_mask(40)[None]  # dense attention with an explicit boolean mask
    dense = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                           attn_mask=mask, scale=0.1)
    assert torch.allclose(got, dense, atol=1e-5)
    causal = attention(q, k, v, pattern=None, scale=0.1)
    assert not torch.allclose(got, causal, atol=1e-3)  # the pattern really drops far blocks


def test_model_pattern_properties():
    cfg = _small_cfg(n_heads=4, vertical_stride=4, local_blocks=2, block_size=4)
    mask = layer_pattern(cfg, 0).token_mask(64)  # [H, T, T]
    i = torch.arange(64)
    assert not (mask & (i[None, :, None] < i[None, None, :])).any()  # causal
    same_or_prev_block = (i[:, None] // 4 - i[None, :] // 4 < 2) & (i[:, None] >= i[None, :])
    assert mask[:, same_or_prev_block].all()  # the local window (diagonal block included) is always kept
    union = mask.any(dim=0)
    assert torch.equal(union, i[:, None] >= i[None, :])  # the heads together cover every earlier token
    assert not mask.all(dim=0)[i[:, None] >= i[None, :]].all()  # while each head alone is sparse


def test_moe_routing_matches_phimoe_in_eval_mode():
    from transformers.models.phimoe.modeling_phimoe import PhimoeSparseMoeBlock

    torch.manual_seed(0)
    hf_cfg = PhimoeConfig(**COMMON, num_local_experts=6)
    hf_block = PhimoeSparseMoeBlock(hf_cfg).eval()
    for p in hf_block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ours = MoEFeedForward(ModelConfig(d_model=32, n_heads=4, ffn_dim=48, n_experts=6, top_k=2,
                                      router="sparsemixer", router_jitter=0.01)).eval()
    with torch.no_grad():
        ours.router.weight.copy_(hf_block.router.weight)
        gate, up = hf_block.experts.gate_up_proj.chunk(2, dim=1)
        ours.w_gate.copy_(gate), ours.w_up.copy_(up), ours.w_down.copy_(hf_block.experts.down_proj)
    x = torch.randn(64, 32)
    with torch.no_grad():
        _, hf_weights, hf_ids = hf_block.router(x.clone())
        _, weights, ids = ours.route(x)
        assert torch.equal(ids, hf_ids)
        assert torch.allclose(weights, hf_weights, atol=1e-6)
        assert torch.allclose(ours(x[None])[0], hf_block(x[None].clone())[0], atol=1e-5)
    assert (weights.sum(-1) - 1).abs().max() > 0.1  # SparseMixer's two weights are not renormalised


def test_sparsemixer_training_gradient_is_the_sparsemixer_estimate():
    from assay.trainer.moe import sparsemixer_top2

    torch.manual_seed(0)
    scores = torch.randn(16, 5, requires_grad=True)
    weights, ids = sparsemixer_top2(scores, jitter_eps=0.01, training=True)
    weights[:, 0].sum().backward()  # first pick only: d scores = w * (onehot - p)
    with torch.no_grad():
        s = scores.detach()
        top = s.max(-1, keepdim=True).values
        masked = s.masked_fill((top - s) / s.abs().clamp(min=top) > 0.02, float("-inf"))
        p = torch.softmax(masked, -1)
        w = p.gather(-1, ids[:, :1])
        expected = w * (F.one_hot(ids[:, 0], 5).float() - p)
    assert torch.allclose(scores.grad, expected, atol=1e-6)


def test_softmax_topk_and_load_balance_by_hand():
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.0]])
    weights, ids = softmax_topk(scores, 2)
    assert ids.tolist() == [[0, 1], [1, 2]]
    assert torch.allclose(weights[0], torch.tensor([math.e / (math.e + 1), 1 / (math.e + 1)]), atol=1e-6)
    stats = load_balance(scores, ids, 4)
    assert stats["load"].tolist() == [0.25, 0.5, 0.25, 0.0]
    mean_prob = torch.softmax(scores, -1).mean(0)
    assert math.isclose(stats["aux"].item(), 4 * float((stats["load"] * mean_prob).sum()), rel_tol=1e-6)


def test_presets_span_1m_to_1b_and_counts_are_real():
    totals = {name: parameter_count(cfg)["total"] for name, cfg in PRESETS.items()}
    assert min(totals.values()) < 2e6 and 0.8e9 < max(totals.values()) < 1.3e9
    cfg = PRESETS["mini-1m"]
    model = Decoder(cfg)
    assert totals["mini-1m"] == sum(p.numel() for p in model.parameters())  # tied weights counted once
    moe = parameter_count(PRESETS["moe-10m"])
    assert moe["active"] < moe["total"]


def test_flops_per_token_by_hand():
    cfg = ModelConfig(vocab_size=100, d_model=16, n_layers=1, n_heads=2, n_kv_heads=2, ffn_dim=24)
    matmul = 16 * 48 + 16 * 16 + 16 * 48 + 24 * 16 + 16 * 100  # qkv, out, gate_up, down, lm_head
    attn = 12 * 16 * (32 + 1) / 2  # 12 x width x mean keys attended at T = 32
    assert flops_per_token(cfg, 32) == pytest.approx(6 * matmul + attn)


@pytest.mark.parametrize("divisor", [1.0, 8.0])
def test_fused_training_loss_equals_cross_entropy_of_logits(divisor):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, ffn_dim=40, logit_divisor=divisor)
    model = Decoder(cfg)
    tokens = torch.randint(0, 50, (2, 17))
    fused = model(tokens[:, :-1], tokens[:, 1:])
    fused.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    plain = F.cross_entropy(model(tokens[:, :-1]).reshape(-1, 50), tokens[:, 1:].reshape(-1))
    plain.backward()
    assert fused.item() == pytest.approx(plain.item(), abs=1e-5)
    assert all(torch.allclose(grads[n], p.grad, atol=1e-6) for n, p in model.named_parameters())
