"""Fused RMSNorm and chunked linear cross-entropy against the plain PyTorch computations."""
import pytest
import torch
import torch.nn.functional as F

from assay.kernels.linear_cross_entropy import LinearCrossEntropyConfig, linear_cross_entropy
from assay.kernels.rmsnorm import rms_norm


def grads(out, inputs, seed=1):
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    return torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2)])
def test_triton_rmsnorm_matches_torch(dtype, tol):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 40, generator=gen).to(dtype).requires_grad_()
    w = (1 + 0.1 * torch.randn(40, generator=gen)).to(dtype).requires_grad_()
    got = rms_norm(x, w, 1e-6, backend="triton")
    x32, w32 = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    want = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6) * w32
    torch.testing.assert_close(got.float(), want, atol=tol, rtol=tol)
    for g, r in zip(grads(got, (x, w)), grads(want, (x32, w32))):
        torch.testing.assert_close(g.float(), r, atol=tol * 5, rtol=tol * 5)


def test_rmsnorm_rejects_wrong_weight():
    with pytest.raises(ValueError, match="last dim"):
        rms_norm(torch.randn(2, 8), torch.ones(4))


@pytest.mark.parametrize("chunk_rows,scale,reduction", [(8, 1.0, "mean"), (5, 0.125, "sum"), (1000, 2.0, "mean")])
def test_chunked_linear_cross_entropy_matches_full_logits(chunk_rows, scale, reduction):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=gen, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 50, (37,), generator=gen)
    targets[[3, 20]] = -100
    cfg = LinearCrossEntropyConfig(chunk_rows=chunk_rows, logit_scale=scale, reduction=reduction)
    loss = linear_cross_entropy(hidden, weight, targets, config=cfg)
    want = F.cross_entropy((hidden @ weight.T) * scale, targets, ignore_index=-100, reduction=reduction)
    torch.testing.assert_close(loss, want)
    got_grads = torch.autograd.grad(loss * 3.0, (hidden, weight))
    want_grads = torch.autograd.grad(want * 3.0, (hidden, weight))
    for g, r in zip(got_grads, want_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_linear_cross_entropy_without_grad_and_all_ignored():
    hidden, weight = torch.randn(6, 4), torch.randn(9, 4)
    targets = torch.full((6,), -100)
    assert linear_cross_entropy(hidden, weight, targets).item() == 0.0
    with pytest.raises(ValueError, match="vocab size"):
        linear_cross_entropy(hidden, weight, torch.full((6,), 9))


@pytest.mark.gpu
def test_gpu_rmsnorm_auto_is_fused_and_matches_torch():
    x = torch.randn(64, 1000, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.rand(1000, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    got = rms_norm(x, w, 1e-5)
    want = F.rms_norm(x.float(), (1000,), w.float(), 1e-5)
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)
    assert got.grad_fn is not None and "FusedRMSNorm" in type(got.grad_fn).__name__
