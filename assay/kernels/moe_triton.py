"""Fused MoE SwiGLU in Triton, forward and backward, over expert-aligned rows (assay.kernels.moe_align).

Forward: (1) gate/up grouped GEMM with SiLU*up fused, (2) down grouped GEMM with the routing weight fused,
written to each pair's own row; the k rows of a token are then summed (no atomics on activations).
Backward: (3) dout @ Wd with the SwiGLU backward and the routing-weight gradient fused, (4) dx as one grouped
GEMM over both gate and up, (5) per-expert weight gradients that reduce over that expert's rows only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from assay.kernels.moe_align import ExpertAlignment, align_by_expert


@dataclass(frozen=True)
class MoEKernelConfig:
    """Tile sizes (powers of two >= 16). block_m is also the per-expert row padding."""

    block_m: int = 64  # rows (token x choice pairs) per tile
    block_n: int = 64  # output columns per tile
    block_k: int = 32  # reduction depth per step
    num_warps: int = 4  # Triton warps per program

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "block_k"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"MoEKernelConfig.{name} must be a power of two >= 16 (tl.dot's minimum), got {value}")
        if self.num_warps not in (1, 2, 4, 8, 16):
            raise ValueError(f"MoEKernelConfig.num_warps must be 1, 2, 4, 8 or 16, got {self.num_warps}")


@triton.jit
def _moe_gate_up_fwd(X, WG, WU, G, U, H, SORTED, BLOCK_EXPERT, num_pairs, top_k, d_model, ffn,
                     stride_xn, stride_we, stride_wf, stride_hp,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SAVE: tl.constexpr,
                     PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BLOCK_EXPERT + pid_m).to(tl.int64)
    rows = pid_m * BM + tl.arange(0, BM)
    pair = tl.load(SORTED + rows)
    row_ok = pair < num_pairs
    token = (pair // top_k).to(tl.int64)
    offs_f = pid_n * BN + tl.arange(0, BN)
    f_ok = offs_f < ffn
    acc_g = tl.zeros([BM, BN], tl.float32)
    acc_u = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, d_model, BK):
        offs_k = k0 + tl.arange(0, BK)
        k_ok = offs_k < d_model
        x = tl.load(X + token[:, None] * stride_xn + offs_k[None, :], mask=row_ok[:, None] & k_ok[None, :],
                    other=0.0)
        w_off = e * stride_we + offs_f[None, :] * stride_wf + offs_k[:, None]
        w_ok = k_ok[:, None] & f_ok[None, :]
        acc_g += tl.dot(x, tl.load(WG + w_off, mask=w_ok, other=0.0), input_precision=PRECISION)
        acc_u += tl.dot(x, tl.load(WU + w_off, mask=w_ok, other=0.0), input_precision=PRECISION)
    h = acc_g * tl.sigmoid(acc_g) * acc_u
    out_off = rows[:, None].to(tl.int64) * stride_hp + offs_f[None, :]
    tl.store(H + out_off, h.to(H.dtype.element_ty), mask=f_ok[None, :])
    if SAVE:
        tl.store(G + out_off, acc_g.to(G.dtype.element_ty), mask=f_ok[None, :])
        tl.store(U + out_off, acc_u.to(U.dtype.element_ty), mask=f_ok[None, :])


@triton.jit
def _moe_grouped_matmul(A, W, A2, W2, OUT, ROUTE_W, SORTED, BLOCK_EXPERT, num_pairs, size_k, size_n,
                        stride_am, stride_we, stride_wk, stride_wn, stride_om,
                        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, TWO_OPERANDS: tl.constexpr,
                        SCALE_BY_ROUTE: tl.constexpr, PRECISION: tl.constexpr):
    """OUT[pair] = (A[row] @ W[e] (+ A2[row] @ W2[e])) (* route weight): rows sorted, output scattered to pairs."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BLOCK_EXPERT + pid_m).to(tl.int64)
    rows = (pid_m * BM + tl.arange(0, BM)).to(tl.int64)
    pair = tl.load(SORTED + rows)
    row_ok = pair < num_pairs
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < size_n
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, size_k, BK):
        offs_k = k0 + tl.arange(0, BK)
        k_ok = offs_k < size_k
        a_off = rows[:, None] * stride_am + offs_k[None, :]
        w_off = e * stride_we + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wn
        w_ok = k_ok[:, None] & n_ok[None, :]
        a = tl.load(A + a_off, mask=k_ok[None, :], other=0.0)
        acc += tl.dot(a, tl.load(W + w_off, mask=w_ok, other=0.0), input_precision=PRECISION)
        if TWO_OPERANDS:
            a2 = tl.load(A2 + a_off, mask=k_ok[None, :], other=0.0)
            acc += tl.dot(a2, tl.load(W2 + w_off, mask=w_ok, other=0.0), input_precision=PRECISION)
    if SCALE_BY_ROUTE:
        acc = acc * tl.load(ROUTE_W + pair, mask=row_ok, other=0.0)[:, None]
    out_off = pair[:, None].to(tl.int64) * stride_om + offs_n[None, :]
    tl.store(OUT + out_off, acc.to(OUT.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])


@triton.jit
def _moe_down_bwd(DOUT, WD, G, U, DG, DU, ROUTE_W, DROUTE_W, SORTED, BLOCK_EXPERT, num_pairs, top_k, d_model,
                  ffn, stride_dn, stride_we, stride_wd, stride_hp,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PRECISION: tl.constexpr):
    """dH = w * dout[token] @ Wd[e]; dw += rowsum((dout @ Wd[e]) * h); then SwiGLU backward into dG, dU."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BLOCK_EXPERT + pid_m).to(tl.int64)
    rows = pid_m * BM + tl.arange(0, BM)
    pair = tl.load(SORTED + rows)
    row_ok = pair < num_pairs
    token = (pair // top_k).to(tl.int64)
    offs_f = pid_n * BN + tl.arange(0, BN)
    f_ok = offs_f < ffn
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, d_model, BK):
        offs_k = k0 + tl.arange(0, BK)
        k_ok = offs_k < d_model
        dout = tl.load(DOUT + token[:, None] * stride_dn + offs_k[None, :], mask=row_ok[:, None] & k_ok[None, :],
                       other=0.0)
        wd = tl.load(WD + e * stride_we + offs_k[:, None] * stride_wd + offs_f[None, :],
                     mask=k_ok[:, None] & f_ok[None, :], other=0.0)
        acc += tl.dot(dout, wd, input_precision=PRECISION)
    act_off = rows[:, None].to(tl.int64) * stride_hp + offs_f[None, :]
    g = tl.load(G + act_off, mask=f_ok[None, :], other=0.0).to(tl.float32)
    u = tl.load(U + act_off, mask=f_ok[None, :], other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    silu = g * sig
    tl.atomic_add(DROUTE_W + pair, tl.sum(acc * silu * u, axis=1), mask=row_ok)
    dh = acc * tl.load(ROUTE_W + pair, mask=row_ok, other=0.0)[:, None]
    dg = dh * u * sig * (1.0 + g * (1.0 - sig))
    tl.store(DG + act_off, dg.to(DG.dtype.element_ty), mask=f_ok[None, :])
    tl.store(DU + act_off, (dh * silu).to(DU.dtype.element_ty), mask=f_ok[None, :])


@triton.jit
def _moe_expert_weight_grad(A, B, OUT, ROUTE_W, SORTED, EXPERT_OFFSETS, num_pairs, top_k, size_m, size_n,
                            stride_am, stride_bm, stride_oe, stride_om,
                            BM: tl.constexpr, BN: tl.constexpr, BR: tl.constexpr, A_BY_TOKEN: tl.constexpr,
                            B_BY_TOKEN: tl.constexpr, SCALE_A_BY_ROUTE: tl.constexpr, PRECISION: tl.constexpr):
    """OUT[e] = sum over expert e's rows r of A[r]^T B[r] (rows gathered by token or taken in sorted order)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.program_id(2)
    start = tl.load(EXPERT_OFFSETS + e)
    end = tl.load(EXPERT_OFFSETS + e + 1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    m_ok = offs_m < size_m
    n_ok = offs_n < size_n
    acc = tl.zeros([BM, BN], tl.float32)
    for r0 in range(start, end, BR):
        rows = r0 + tl.arange(0, BR)
        pair = tl.load(SORTED + rows)
        row_ok = pair < num_pairs
        token = (pair // top_k).to(tl.int64)
        a_rows = token if A_BY_TOKEN else rows.to(tl.int64)
        b_rows = token if B_BY_TOKEN else rows.to(tl.int64)
        a = tl.load(A + a_rows[:, None] * stride_am + offs_m[None, :], mask=row_ok[:, None] & m_ok[None, :],
                    other=0.0)
        b = tl.load(B + b_rows[:, None] * stride_bm + offs_n[None, :], mask=row_ok[:, None] & n_ok[None, :],
                    other=0.0)
        if SCALE_A_BY_ROUTE:
            a = (a * tl.load(ROUTE_W + pair, mask=row_ok, other=0.0)[:, None]).to(b.dtype)
        acc += tl.dot(tl.trans(a), b, input_precision=PRECISION)
    out_off = e.to(tl.int64) * stride_oe + offs_m[:, None] * stride_om + offs_n[None, :]
    tl.store(OUT + out_off, acc.to(OUT.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _precision(x: torch.Tensor) -> str | None:
    return "ieee" if x.dtype == torch.float32 else None


def _gate_up(x, w_gate, w_up, al: ExpertAlignment, cfg: MoEKernelConfig, save: bool):
    ffn = w_gate.shape[1]
    h = torch.empty(al.padded_rows, ffn, device=x.device, dtype=x.dtype)
    g = torch.empty_like(h) if save else h
    u = torch.empty_like(h) if save else h
    grid = (al.padded_rows // cfg.block_m, triton.cdiv(ffn, cfg.block_n))
    _moe_gate_up_fwd[grid](x, w_gate, w_up, g, u, h, al.sorted_pairs, al.block_expert, al.num_pairs, al.top_k,
                           x.shape[1], ffn, x.stride(0), w_gate.stride(0), w_gate.stride(1), h.stride(0),
                           BM=cfg.block_m, BN=cfg.block_n, BK=cfg.block_k, SAVE=save, PRECISION=_precision(x),
                           num_warps=cfg.num_warps)
    return g, u, h


def _grouped_matmul(a, w_view, al: ExpertAlignment, size_n, cfg, out_dtype, route_w=None, a2=None, w2=None):
    """w_view(W) gives (W, stride_e, stride_k, stride_n) so the same kernel serves W and W^T."""
    w, se, sk, sn = w_view
    out = torch.empty(al.num_pairs, size_n, device=a.device, dtype=out_dtype)
    grid = (al.padded_rows // cfg.block_m, triton.cdiv(size_n, cfg.block_n))
    _moe_grouped_matmul[grid](a, w, a if a2 is None else a2, w if w2 is None else w2, out,
                              route_w if route_w is not None else out, al.sorted_pairs, al.block_expert,
                              al.num_pairs, a.shape[1], size_n, a.stride(0), se, sk, sn, out.stride(0),
                              BM=cfg.block_m, BN=cfg.block_n, BK=cfg.block_k, TWO_OPERANDS=a2 is not None,
                              SCALE_BY_ROUTE=route_w is not None, PRECISION=_precision(a), num_warps=cfg.num_warps)
    return out


def _weight_grad(a, b, out_shape, al: ExpertAlignment, cfg, dtype, a_by_token, b_by_token, route_w=None):
    out = torch.empty(out_shape, device=a.device, dtype=dtype)
    size_m, size_n = out_shape[1], out_shape[2]
    grid = (triton.cdiv(size_m, cfg.block_n), triton.cdiv(size_n, cfg.block_n), out_shape[0])
    _moe_expert_weight_grad[grid](a, b, out, route_w if route_w is not None else out, al.sorted_pairs,
                                  al.expert_offsets, al.num_pairs, al.top_k, size_m, size_n, a.stride(0),
                                  b.stride(0), out.stride(0), out.stride(1),
                                  BM=cfg.block_n, BN=cfg.block_n, BR=cfg.block_m, A_BY_TOKEN=a_by_token,
                                  B_BY_TOKEN=b_by_token, SCALE_A_BY_ROUTE=route_w is not None,
                                  PRECISION=_precision(a), num_warps=cfg.num_warps)
    return out


class _FusedMoE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_gate, w_up, w_down, topk_ids, topk_weights, cfg: MoEKernelConfig):
        x, w_gate, w_up, w_down = (t.contiguous() for t in (x, w_gate, w_up, w_down))
        num_tokens, top_k = topk_ids.shape
        al = align_by_expert(topk_ids, w_gate.shape[0], cfg.block_m)
        route_w = topk_weights.reshape(-1).float().contiguous()
        save = torch.is_grad_enabled() or any(ctx.needs_input_grad)
        g, u, h = _gate_up(x, w_gate, w_up, al, cfg, save=save)
        down = (w_down, w_down.stride(0), w_down.stride(2), w_down.stride(1))  # W[e, f, d] = Wd[e, d, f]
        pairs = _grouped_matmul(h, down, al, x.shape[1], cfg, x.dtype, route_w=route_w)
        ctx.save_for_backward(x, w_gate, w_up, w_down, g, u, h, route_w)
        ctx.al, ctx.cfg, ctx.weights_dtype = al, cfg, topk_weights.dtype
        return pairs.view(num_tokens, top_k, -1).sum(1)

    @staticmethod
    def backward(ctx, dout):
        x, w_gate, w_up, w_down, g, u, h, route_w = ctx.saved_tensors
        al, cfg = ctx.al, ctx.cfg
        dout = dout.contiguous()
        ffn = w_gate.shape[1]
        dg, du = torch.empty_like(g), torch.empty_like(u)
        droute = torch.zeros_like(route_w)
        grid = (al.padded_rows // cfg.block_m, triton.cdiv(ffn, cfg.block_n))
        _moe_down_bwd[grid](dout, w_down, g, u, dg, du, route_w, droute, al.sorted_pairs, al.block_expert,
                            al.num_pairs, al.top_k, x.shape[1], ffn, dout.stride(0), w_down.stride(0),
                            w_down.stride(1), g.stride(0), BM=cfg.block_m, BN=cfg.block_n, BK=cfg.block_k,
                            PRECISION=_precision(x), num_warps=cfg.num_warps)
        gate = (w_gate, w_gate.stride(0), w_gate.stride(1), w_gate.stride(2))
        dx_pairs = _grouped_matmul(dg, gate, al, x.shape[1], cfg, torch.float32, a2=du, w2=w_up)
        dx = dx_pairs.view(x.shape[0], al.top_k, -1).sum(1).to(x.dtype)
        dw_gate = _weight_grad(dg, x, w_gate.shape, al, cfg, w_gate.dtype, False, True)
        dw_up = _weight_grad(du, x, w_up.shape, al, cfg, w_up.dtype, False, True)
        dw_down = _weight_grad(dout, h, w_down.shape, al, cfg, w_down.dtype, True, False, route_w=route_w)
        dweights = droute.view(x.shape[0], al.top_k).to(ctx.weights_dtype)
        return dx, dw_gate, dw_up, dw_down, None, dweights, None


def triton_moe_ffn(x, w_gate, w_up, w_down, topk_ids, topk_weights, *,
                   config: MoEKernelConfig | None = None) -> torch.Tensor:
    """Fused MoE SwiGLU (see module docstring); differentiable wrt x, the weights and topk_weights."""
    return _FusedMoE.apply(x, w_gate, w_up, w_down, topk_ids, topk_weights, config or MoEKernelConfig())
