"""Fused MoE (Triton) against the per-expert loop: outputs and gradients wrt x, weights and routing weights."""
import pytest
import torch
import torch.nn.functional as F

from assay.kernels.moe import moe_ffn
from assay.kernels.moe_align import align_by_expert
from assay.kernels.moe_triton import MoEKernelConfig

SMALL = MoEKernelConfig(block_m=16, block_n=16, block_k=16)
TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.float16: dict(atol=2e-2, rtol=2e-2)}


def make_moe(tokens, experts, top_k, d_model, ffn, dtype=torch.float32, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d_model, generator=gen)
    w_gate = torch.randn(experts, ffn, d_model, generator=gen) / d_model ** 0.5
    w_up = torch.randn(experts, ffn, d_model, generator=gen) / d_model ** 0.5
    w_down = torch.randn(experts, d_model, ffn, generator=gen) / ffn ** 0.5
    ids = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)])
    weights = torch.rand(tokens, top_k, generator=gen)
    tensors = [t.to(device=device, dtype=dtype).requires_grad_() for t in (x, w_gate, w_up, w_down)]
    return (*tensors, ids.to(device), weights.to(device).requires_grad_())


def run(inputs, **kwargs):
    x, wg, wu, wd, ids, w = inputs
    out = moe_ffn(x, wg, wu, wd, ids, w, **kwargs)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    return (out, *torch.autograd.grad(out, (x, wg, wu, wd, w), grad_out))


def reference(inputs):
    x, wg, wu, wd, ids, w = inputs
    as32 = [t.detach().float().requires_grad_() for t in (x, wg, wu, wd)]
    return run((*as32, ids, w.detach().float().requires_grad_()), backend="reference")


def assert_close(got, want, dtype):
    for name, g, r in zip(("out", "dx", "dw_gate", "dw_up", "dw_down", "dtopk_weights"), got, want):
        torch.testing.assert_close(g.float(), r.float(), **TOL[dtype], msg=lambda m: f"{name}: {m}")


def test_reference_matches_dense_formula():
    x, wg, wu, wd, ids, w = (t.detach() for t in make_moe(5, 3, 2, 8, 12))
    out = moe_ffn(x, wg, wu, wd, ids, w, backend="reference")
    for n in range(5):
        want = sum(w[n, j] * (F.silu(wg[ids[n, j]] @ x[n]) * (wu[ids[n, j]] @ x[n])) @ wd[ids[n, j]].T
                   for j in range(2))
        torch.testing.assert_close(out[n], want)


@pytest.mark.parametrize("tokens,experts,top_k,d_model,ffn", [
    (20, 4, 2, 32, 48),   # ffn not a multiple of the tile
    (13, 8, 1, 16, 16),   # top-1
    (24, 64, 2, 16, 16),  # 64 experts, most of them with one or no token
    (9, 2, 2, 24, 20),    # every token uses both experts; d_model not a multiple of the tile
])
def test_triton_matches_reference(tokens, experts, top_k, d_model, ffn):
    inputs = make_moe(tokens, experts, top_k, d_model, ffn)
    assert_close(run(inputs, backend="triton", config=SMALL), reference(inputs), torch.float32)


def test_triton_fp16():
    inputs = make_moe(17, 4, 2, 32, 32, dtype=torch.float16)
    got = run(inputs, backend="triton", config=SMALL)
    assert got[0].dtype == torch.float16
    assert_close(got, reference(inputs), torch.float16)


def test_alignment_groups_pairs_by_expert():
    ids = torch.tensor([[2, 0], [2, 1], [0, 2], [2, 0]])
    al = align_by_expert(ids, num_experts=4, block_m=4)
    assert al.expert_offsets.tolist() == [0, 4, 8, 12, 12]
    assert al.block_expert.tolist() == [0, 1, 2]
    flat = ids.flatten()
    for e in range(3):
        run_ = al.sorted_pairs[al.expert_offsets[e]:al.expert_offsets[e + 1]]
        real = run_[run_ < al.num_pairs]
        assert real.tolist() == (flat == e).nonzero().flatten().tolist()
        assert (run_[len(real):] == al.num_pairs).all()


def test_clear_errors():
    x, wg, wu, wd, ids, w = (t.detach() for t in make_moe(4, 3, 2, 8, 12))
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        moe_ffn(x, wg, wu, wd, ids + 5, w)
    with pytest.raises(ValueError, match="int64"):
        moe_ffn(x, wg, wu, wd, ids.int(), w)
    with pytest.raises(ValueError, match="w_down must be"):
        moe_ffn(x, wg, wu, wd.transpose(1, 2), ids, w)
    with pytest.raises(ValueError, match="unknown MoE backend"):
        moe_ffn(x, wg, wu, wd, ids, w, backend="fast")


def test_triton_without_gpu_or_interpreter_says_what_to_do(monkeypatch):
    x, wg, wu, wd, ids, w = (t.detach() for t in make_moe(4, 3, 2, 8, 12))
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="backend='reference'"):
        moe_ffn(x, wg, wu, wd, ids, w, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("experts,top_k", [(8, 1), (16, 2), (64, 2)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_triton_matches_reference(experts, top_k, dtype):
    inputs = make_moe(512, experts, top_k, 256, 384, dtype=dtype, device="cuda")
    got = run(inputs, backend="auto")
    want = reference(inputs)
    for g, r in zip(got, want):
        torch.testing.assert_close(g.float(), r.float(), atol=5e-2, rtol=5e-2)


def test_autocast_casts_fp32_weights_and_gradients_return_in_fp32():
    """A bf16/fp16 training step hands moe_ffn fp32 master weights: inside autocast they are cast (the fused kernel
    then runs in half precision) and their gradients come back in fp32; outside autocast mixed dtypes are refused."""
    inputs = make_moe(24, 4, 2, 16, 24)  # all fp32
    with torch.autocast("cpu", dtype=torch.float16):
        got = run(inputs, backend="triton")
    assert got[0].dtype == torch.float16
    assert all(g.dtype == torch.float32 for g in got[1:])  # grads of the fp32 leaves
    assert_close(got, reference(inputs), torch.float16)
    x, wg, wu, wd, ids, w = inputs
    with pytest.raises(ValueError, match="share a dtype"):
        moe_ffn(x.half(), wg, wu, wd, ids, w, backend="reference")


def test_kernel_config_is_checked():
    from assay.kernels.moe_triton import MoEKernelConfig

    with pytest.raises(ValueError, match="block_k must be a power of two >= 16"):
        MoEKernelConfig(block_k=24)
    with pytest.raises(ValueError, match="num_warps"):
        MoEKernelConfig(num_warps=3)
