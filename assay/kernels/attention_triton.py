"""Fused blocksparse flash attention in Triton, forward and backward.

Each program walks a per-head list of allowed key blocks (assay.kernels.block_tables), so the work is proportional to
the pattern's density; dense causal attention is the list of all earlier blocks. The forward pass keeps the
log-sum-exp (base 2) of each row so the backward pass recomputes probabilities without a second softmax.
GQA: query head h reads kv head h // group; dK/dV programs loop over their group's query heads.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from assay.kernels.block_tables import MAX_KERNEL_TILE, BlockTables, block_tables, kernel_tile
from assay.kernels.blocksparse_pattern import BlockSparsePattern
from assay.kernels.dispatch import require_triton

LOG2E = 1.4426950408889634  # log2(e): the kernels use exp2, as Triton's fused-attention tutorial does
DENSE_BLOCK_SIZE = 64  # dense causal attention (no pattern) runs as blocks of this many tokens


@triton.jit
def _attn_fwd(Q, K, V, O, LSE, KV_COUNT, KV_INDEX,  # noqa: E741 (O: the output, beside Q, K, V)
              stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
              num_heads, group, seq_len, num_blocks, qk_scale,
              BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // num_heads
    h = bh % num_heads
    hk = h // group
    offs_m = qb * BLOCK + tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    q_off = b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :]
    q = tl.load(Q + q_off, mask=(offs_m[:, None] < seq_len) & d_ok[None, :], other=0.0)
    m_i = tl.full([BLOCK], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK, BLOCK_D], tl.float32)
    kv_base = b * stride_kb + hk * stride_kh
    row = h * num_blocks + qb
    count = tl.load(KV_COUNT + row)
    for i in range(count):
        kb = tl.load(KV_INDEX + row * num_blocks + i)
        offs_k = kb * BLOCK + offs_n
        kv_ok = (offs_k[:, None] < seq_len) & d_ok[None, :]
        kv_off = kv_base + offs_k[:, None] * stride_kt + offs_d[None, :]
        k = tl.load(K + kv_off, mask=kv_ok, other=0.0)
        v = tl.load(V + kv_off, mask=kv_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        valid = (offs_m[:, None] >= offs_k[None, :]) & (offs_k[None, :] < seq_len)
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    row_ok = offs_m < seq_len
    tl.store(O + q_off, (acc / l_i[:, None]).to(O.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
    tl.store(LSE + bh * seq_len + offs_m, m_i + tl.log2(l_i), mask=row_ok)


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, LSE, DELTA, DK, DV, Q_COUNT, Q_INDEX,
                   stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
                   num_heads, num_kv_heads, group, seq_len, num_blocks, qk_scale, sm_scale,
                   BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    kb = tl.program_id(0)
    bhk = tl.program_id(1)
    b = bhk // num_kv_heads
    hk = bhk % num_kv_heads
    offs_k = kb * BLOCK + tl.arange(0, BLOCK)
    offs_m0 = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    kv_off = b * stride_kb + hk * stride_kh + offs_k[:, None] * stride_kt + offs_d[None, :]
    kv_ok = (offs_k[:, None] < seq_len) & d_ok[None, :]
    k = tl.load(K + kv_off, mask=kv_ok, other=0.0)
    v = tl.load(V + kv_off, mask=kv_ok, other=0.0)
    dk = tl.zeros([BLOCK, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK, BLOCK_D], tl.float32)
    for g in range(group):
        h = hk * group + g
        bh = b * num_heads + h
        row = h * num_blocks + kb
        count = tl.load(Q_COUNT + row)
        for i in range(count):
            qb = tl.load(Q_INDEX + row * num_blocks + i)
            offs_m = qb * BLOCK + offs_m0
            m_ok = offs_m < seq_len
            q_off = b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :]
            q = tl.load(Q + q_off, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
            do = tl.load(DO + q_off, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
            lse = tl.load(LSE + bh * seq_len + offs_m, mask=m_ok, other=0.0)
            delta = tl.load(DELTA + bh * seq_len + offs_m, mask=m_ok, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
            valid = (offs_m[:, None] >= offs_k[None, :]) & m_ok[:, None] & (offs_k[None, :] < seq_len)
            p = tl.where(valid, tl.exp2(s - lse[:, None]), 0.0)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    tl.store(DK + kv_off, (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_ok)
    tl.store(DV + kv_off, dv.to(DV.dtype.element_ty), mask=kv_ok)


@triton.jit
def _attn_bwd_dq(Q, K, V, DO, LSE, DELTA, DQ, KV_COUNT, KV_INDEX,
                 stride_qb, stride_qh, stride_qt, stride_kb, stride_kh, stride_kt,
                 num_heads, group, seq_len, num_blocks, qk_scale, sm_scale,
                 BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // num_heads
    h = bh % num_heads
    hk = h // group
    offs_m = qb * BLOCK + tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    m_ok = offs_m < seq_len
    q_off = b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :]
    q = tl.load(Q + q_off, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    do = tl.load(DO + q_off, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    lse = tl.load(LSE + bh * seq_len + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(DELTA + bh * seq_len + offs_m, mask=m_ok, other=0.0)
    dq = tl.zeros([BLOCK, BLOCK_D], tl.float32)
    kv_base = b * stride_kb + hk * stride_kh
    row = h * num_blocks + qb
    count = tl.load(KV_COUNT + row)
    for i in range(count):
        kb = tl.load(KV_INDEX + row * num_blocks + i)
        offs_k = kb * BLOCK + offs_n
        kv_ok = (offs_k[:, None] < seq_len) & d_ok[None, :]
        kv_off = kv_base + offs_k[:, None] * stride_kt + offs_d[None, :]
        k = tl.load(K + kv_off, mask=kv_ok, other=0.0)
        v = tl.load(V + kv_off, mask=kv_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        valid = (offs_m[:, None] >= offs_k[None, :]) & m_ok[:, None] & (offs_k[None, :] < seq_len)
        p = tl.where(valid, tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    tl.store(DQ + q_off, (dq * sm_scale).to(DQ.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


def tile_cap(head_dim: int) -> int:
    """The largest square tile whose backward fits an H100/H200 SM's 227 KB of shared memory at this head dim
    (measured by scripts/kernels_cross_compile.py: 64 up to head dim 128, 32 beyond)."""
    return MAX_KERNEL_TILE if triton.next_power_of_2(head_dim) <= 128 else 32


def _launch_params(q: torch.Tensor, head_dim: int) -> dict:
    block_d = max(16, triton.next_power_of_2(head_dim))
    precision = "ieee" if q.dtype == torch.float32 else None
    # 4 warps up to head dim 64, 8 above: Triton's fused-attention tutorial's choice
    return dict(HEAD_DIM=head_dim, BLOCK_D=block_d, PRECISION=precision, num_warps=4 if block_d <= 64 else 8)


class _BlockSparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, tables: BlockTables, scale: float):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        batch, num_heads, seq_len, head_dim = q.shape
        num_blocks = tables.kv_count.shape[1]
        o = torch.empty_like(q)
        lse = torch.empty(batch, num_heads, seq_len, device=q.device, dtype=torch.float32)
        params = _launch_params(q, head_dim)
        _attn_fwd[(num_blocks, batch * num_heads)](
            q, k, v, o, lse, tables.kv_count, tables.kv_index,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            num_heads, num_heads // k.shape[1], seq_len, num_blocks, scale * LOG2E,
            BLOCK=tables.block_size, **params)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.tables, ctx.scale = tables, scale
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        tables, scale = ctx.tables, ctx.scale
        do = do.contiguous()
        batch, num_heads, seq_len, head_dim = q.shape
        num_kv_heads = k.shape[1]
        group = num_heads // num_kv_heads
        num_blocks = tables.kv_count.shape[1]
        delta = (do.float() * o.float()).sum(-1).contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        params = _launch_params(q, head_dim)
        strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2))
        _attn_bwd_dkdv[(num_blocks, batch * num_kv_heads)](
            q, k, v, do, lse, delta, dk, dv, tables.q_count, tables.q_index, *strides,
            num_heads, num_kv_heads, group, seq_len, num_blocks, scale * LOG2E, scale,
            BLOCK=tables.block_size, **params)
        _attn_bwd_dq[(num_blocks, batch * num_heads)](
            q, k, v, do, lse, delta, dq, tables.kv_count, tables.kv_index, *strides,
            num_heads, group, seq_len, num_blocks, scale * LOG2E, scale,
            BLOCK=tables.block_size, **params)
        return dq, dk, dv, None, None


def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockSparsePattern | None,
                     scale: float, *, dense_block_size: int = DENSE_BLOCK_SIZE,
                     max_tile: int | None = None) -> torch.Tensor:
    """Blocksparse (or dense causal, pattern None) flash attention; visits only the pattern's blocks, in tiles
    of at most `max_tile` tokens (the largest power of two dividing the pattern's block). max_tile None: the
    largest that fits an H100/H200 SM at this head dim (`tile_cap`: 64, or 32 above head dim 128)."""
    block = pattern.block_size if pattern is not None else dense_block_size
    max_tile = tile_cap(q.shape[-1]) if max_tile is None else max_tile
    tile = kernel_tile(block, max_tile)
    if tile is None:
        raise ValueError(f"the Triton attention kernel needs a block size that is a multiple of 16 (its tiles "
                         f"are powers of two from 16 to {max_tile}), got {block}; "
                         "use backend='flex' or 'sdpa' for other block sizes")
    require_triton(q.device, fallback="sdpa")
    if not math.isfinite(scale):
        raise ValueError(f"attention scale must be finite, got {scale}")
    tables = block_tables(pattern, q.shape[2], q.shape[1], tile, q.device)
    return _BlockSparseAttention.apply(q, k, v, tables, scale)
