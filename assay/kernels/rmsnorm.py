"""RMSNorm: a fused Triton kernel (one pass per row forward, one backward) and torch's rms_norm elsewhere.

The fused version saves only the per-row 1/rms, so the backward pass needs no normalised copy of x.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from assay.kernels.dispatch import require_triton, triton_importable

RMSNORM_BACKENDS = ("auto", "torch", "triton")


@triton.jit
def _rmsnorm_fwd(X, W, Y, RSTD, num_cols, stride_x, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < num_cols
    x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / num_cols + eps)
    w = tl.load(W + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_x + cols, (x * rstd * w).to(Y.dtype.element_ty), mask=ok)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rmsnorm_bwd(DY, X, W, RSTD, DX, DW_PARTIAL, num_rows, num_cols, stride_x, rows_per_program,
                 BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    ok = cols < num_cols
    w = tl.load(W + cols, mask=ok, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], tl.float32)
    first = pid * rows_per_program
    offset = first.to(tl.int64) * stride_x
    for r in range(first, tl.minimum(first + rows_per_program, num_rows)):
        x = tl.load(X + offset + cols, mask=ok, other=0.0).to(tl.float32)
        dy = tl.load(DY + offset + cols, mask=ok, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + r)
        x_hat = x * rstd
        dyw = dy * w
        dx = rstd * (dyw - x_hat * (tl.sum(dyw * x_hat, axis=0) / num_cols))
        tl.store(DX + offset + cols, dx.to(DX.dtype.element_ty), mask=ok)
        dw += dy * x_hat
        offset += stride_x
    tl.store(DW_PARTIAL + pid * num_cols + cols, dw, mask=ok)


class _FusedRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        rows, cols = x2.shape
        y = torch.empty_like(x2)
        rstd = torch.empty(rows, device=x.device, dtype=torch.float32)
        block = triton.next_power_of_2(cols)
        _rmsnorm_fwd[(rows,)](x2, weight, y, rstd, cols, x2.stride(0), eps, BLOCK=block,
                              num_warps=min(16, max(1, block // 256)))
        ctx.save_for_backward(x2, weight, rstd)
        ctx.shape = shape
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, rstd = ctx.saved_tensors
        rows, cols = x2.shape
        dy2 = dy.reshape(rows, cols).contiguous()
        programs = max(1, min(rows, 4 * _multiprocessors(x2.device)))
        rows_per_program = -(-rows // programs)
        programs = -(-rows // rows_per_program)
        dx = torch.empty_like(x2)
        partial = torch.empty(programs, cols, device=x2.device, dtype=torch.float32)
        block = triton.next_power_of_2(cols)
        _rmsnorm_bwd[(programs,)](dy2, x2, weight, rstd, dx, partial, rows, cols, x2.stride(0), rows_per_program,
                                  BLOCK=block, num_warps=min(16, max(1, block // 256)))
        return dx.view(ctx.shape), partial.sum(0).to(weight.dtype), None


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 2


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *, backend: str = "auto") -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim; "auto" = fused Triton on CUDA, torch elsewhere."""
    if backend not in RMSNORM_BACKENDS:
        raise ValueError(f"unknown RMSNorm backend {backend!r}; choose one of {', '.join(RMSNORM_BACKENDS)}")
    if weight.shape != x.shape[-1:]:
        raise ValueError(f"RMSNorm weight must be [{x.shape[-1]}] (the last dim of x), got {tuple(weight.shape)}")
    if backend == "auto":
        backend = "triton" if x.is_cuda and triton_importable() else "torch"
    if backend == "torch":
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    require_triton(x.device, fallback="torch")
    return _FusedRMSNorm.apply(x, weight, eps)
