"""Every attention backend against the plain-PyTorch reference: outputs and gradients, patterns, GQA, lengths."""
import pytest
import torch

from assay.kernels.attention import attention
from assay.kernels.attention_triton import triton_attention
from assay.kernels.blocksparse_pattern import BlockSparsePattern

TOY = BlockSparsePattern(block_size=16, local_blocks=2, vertical_stride=3, num_heads=4)
WIDE = BlockSparsePattern(block_size=16, local_blocks=1, vertical_stride=2, num_heads=4)
HOMOGENEOUS = BlockSparsePattern(block_size=16, local_blocks=1, vertical_stride=2, num_heads=4, homogeneous=True)
TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.float16: dict(atol=2e-2, rtol=2e-2)}


def make_qkv(batch, heads, kv_heads, seq, dim, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, seq, dim), (batch, kv_heads, seq, dim), (batch, kv_heads, seq, dim)]
    return [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in shapes]


def run(fn, q, k, v, seed=1):
    out = fn(q, k, v)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.dtype)
    return (out, *torch.autograd.grad(out, (q, k, v), grad_out))


def reference(q, k, v, pattern, scale):
    """fp32 ground truth on fp32 copies, so low-precision kernels are judged against exact math."""
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    return run(lambda a, b, c: attention(a, b, c, pattern=pattern, scale=scale, backend="reference"), q32, k32, v32)


def assert_close(got, want, dtype):
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
        torch.testing.assert_close(g.float(), w.float(), **TOL[dtype], msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("pattern,heads,kv_heads,seq", [
    (TOY, 4, 4, 48),        # the report's toy pattern, MHA, whole blocks
    (TOY, 4, 2, 45),        # GQA 2, length not a multiple of the block
    (WIDE, 4, 1, 40),       # GQA 4 (MQA), another stride
    (HOMOGENEOUS, 4, 2, 37),
    (None, 4, 2, 45),       # dense causal
])
def test_triton_matches_reference(pattern, heads, kv_heads, seq):
    q, k, v = make_qkv(2, heads, kv_heads, seq, 16)
    got = run(lambda a, b, c: triton_attention(a, b, c, pattern, 0.3, dense_block_size=16), q, k, v)
    assert_close(got, reference(q, k, v, pattern, 0.3), torch.float32)


@pytest.mark.parametrize("block,local,stride,max_tile,seq", [
    (32, 2, 3, 16, 90),   # each 32-token block split into two 16-token tiles; length not a multiple
    (48, 1, 2, 64, 100),  # a 48-token block: tiles of 16 (the largest power of two dividing 48)
    (64, 2, 3, 32, 128),  # tiles of 32 from a max_tile below the block
])
def test_triton_tiles_larger_blocks_exactly(block, local, stride, max_tile, seq):
    """Blocks wider than the kernel tile (a 128-token block with head dim 128 would not fit an H100's shared
    memory in one tile) are split into equal tiles; the result is the same pattern."""
    pattern = BlockSparsePattern(block_size=block, local_blocks=local, vertical_stride=stride, num_heads=4)
    q, k, v = make_qkv(1, 4, 2, seq, 16)
    got = run(lambda a, b, c: triton_attention(a, b, c, pattern, 0.3, max_tile=max_tile), q, k, v)
    assert_close(got, reference(q, k, v, pattern, 0.3), torch.float32)


def test_head_dims_above_128_use_32_token_tiles_and_stay_exact():
    """Past head dim 128 a 64-token tile's backward no longer fits an H100 SM (kernels_cross_compile.py), so the
    tile drops to 32: a 64-token pattern block at head dim 160 (padded to 256) gives the reference's numbers."""
    from assay.kernels.attention_triton import tile_cap

    assert tile_cap(64) == tile_cap(96) == tile_cap(128) == 64 and tile_cap(160) == tile_cap(256) == 32
    pattern = BlockSparsePattern(block_size=64, local_blocks=1, vertical_stride=2, num_heads=2)
    q, k, v = make_qkv(1, 2, 1, 150, 160)
    got = run(lambda a, b, c: triton_attention(a, b, c, pattern, 160 ** -0.5), q, k, v)
    assert_close(got, reference(q, k, v, pattern, 160 ** -0.5), torch.float32)
    from assay.kernels.block_tables import _CACHE  # the tables the call built: (pattern, T, H, tile, device)

    assert (pattern, 150, 2, 32, "cpu") in _CACHE


def test_triton_fp16_and_odd_head_dim():
    q, k, v = make_qkv(1, 4, 2, 33, 24, dtype=torch.float16)
    got = run(lambda a, b, c: triton_attention(a, b, c, TOY, 24 ** -0.5), q, k, v)
    assert got[0].dtype == torch.float16
    assert_close(got, reference(q, k, v, TOY, 24 ** -0.5), torch.float16)


def test_triton_skips_blocks_the_pattern_excludes():
    """NaN in a key/value block poisons only the query blocks allowed to read it."""
    pattern = BlockSparsePattern(block_size=16, local_blocks=1, vertical_stride=4, num_heads=2, homogeneous=True)
    q, k, v = (t.detach() for t in make_qkv(1, 2, 2, 64, 16))
    v_poisoned = v.clone()
    v_poisoned[:, :, 16:32] = float("nan")  # key block 1: allowed only for query block 1 (local)
    out = triton_attention(q, k, v_poisoned, pattern, 0.25)
    assert torch.isnan(out[:, :, 16:32]).all()
    finite = torch.cat([out[:, :, :16], out[:, :, 32:]], dim=2)
    assert torch.isfinite(finite).all()
    want = attention(q, k, v, pattern=pattern, scale=0.25, backend="reference")
    torch.testing.assert_close(out[:, :, 32:], want[:, :, 32:], **TOL[torch.float32])


@pytest.mark.parametrize("pattern,kv_heads,seq", [(TOY, 2, 45), (None, 1, 40), (WIDE, 4, 48)])
def test_sdpa_matches_reference(pattern, kv_heads, seq):
    q, k, v = make_qkv(2, 4, kv_heads, seq, 16)
    got = run(lambda a, b, c: attention(a, b, c, pattern=pattern, scale=0.25, backend="sdpa"), q, k, v)
    assert_close(got, reference(q, k, v, pattern, 0.25), torch.float32)


@pytest.mark.parametrize("pattern,kv_heads,seq", [(TOY, 2, 45), (None, 1, 40), (WIDE, 4, 48)])
def test_flex_forward_matches_reference(pattern, kv_heads, seq):
    """FlexAttention has no CPU backward; its gradients are checked in the GPU test below."""
    q, k, v = (t.detach() for t in make_qkv(2, 4, kv_heads, seq, 16))
    with torch.no_grad():
        got = attention(q, k, v, pattern=pattern, scale=0.25, backend="flex")
    torch.testing.assert_close(got, attention(q, k, v, pattern=pattern, scale=0.25, backend="reference"),
                               **TOL[torch.float32])


def test_flex_on_cpu_with_grad_says_what_to_use():
    q, k, v = make_qkv(1, 4, 2, 32, 16)
    with pytest.raises(RuntimeError, match="backend='sdpa'"):
        attention(q, k, v, pattern=TOY, scale=0.25, backend="flex")


def test_reference_is_plain_softmax_attention():
    """Dense reference equals an explicit per-position loop."""
    q, k, v = (t.detach() for t in make_qkv(1, 2, 1, 5, 4))
    out = attention(q, k, v, pattern=None, scale=0.5, backend="reference")
    for h in range(2):
        for i in range(5):
            weights = torch.softmax((k[0, 0, :i + 1] @ q[0, h, i]) * 0.5, dim=0)
            torch.testing.assert_close(out[0, h, i], weights @ v[0, 0, :i + 1])


def test_auto_on_cpu_uses_sdpa_and_matches_reference():
    q, k, v = (t.detach() for t in make_qkv(1, 4, 2, 45, 16))
    got = attention(q, k, v, pattern=TOY, scale=0.25)
    torch.testing.assert_close(got, attention(q, k, v, pattern=TOY, scale=0.25, backend="reference"),
                               **TOL[torch.float32])


def test_clear_errors():
    q, k, v = (t.detach() for t in make_qkv(1, 4, 2, 32, 16))
    with pytest.raises(ValueError, match="num_heads=4"):
        attention(q, k, v, pattern=BlockSparsePattern(16, 2, 3, num_heads=8), scale=1.0)
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention(q, k, v, pattern=None, scale=1.0, backend="cuda")
    with pytest.raises(ValueError, match="multiple of the kv heads"):
        attention(q, k[:, :1].expand(1, 3, 32, 16), v[:, :1].expand(1, 3, 32, 16), pattern=None, scale=1.0)
    with pytest.raises(ValueError, match="block size"):
        attention(q, k, v, pattern=BlockSparsePattern(12, 2, 3, num_heads=4), scale=1.0, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("backend", ["triton", "flex"])
def test_gpu_backends_match_reference(dtype, head_dim, backend):
    patterns = [BlockSparsePattern(block_size=64, local_blocks=4, vertical_stride=4, num_heads=8),
                BlockSparsePattern(block_size=128, local_blocks=2, vertical_stride=3, num_heads=8), None]
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(s, generator=gen, device="cuda", dtype=dtype).requires_grad_()
               for s in [(2, 8, 1000, head_dim), (2, 2, 1000, head_dim), (2, 2, 1000, head_dim)])
    for pat in patterns:
        got = run(lambda a, b, c: attention(a, b, c, pattern=pat, scale=head_dim ** -0.5, backend=backend), q, k, v)
        want = reference(q, k, v, pat, head_dim ** -0.5)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.float(), w.float(), atol=3e-2, rtol=3e-2)


def test_auto_backend_choice():
    from assay.kernels.attention import resolve_attention_backend
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_attention_backend("auto", cuda, TOY) == "triton"
    assert resolve_attention_backend("auto", cuda, BlockSparsePattern(24, 2, 3, num_heads=4)) == "flex"
    assert resolve_attention_backend("auto", cuda, None) == "sdpa"
    assert resolve_attention_backend("auto", cpu, TOY) == "sdpa"
    assert resolve_attention_backend("reference", cuda, TOY) == "reference"


@pytest.mark.parametrize("backend", ["triton", "sdpa", "reference"])
def test_autocast_casts_mixed_inputs_like_a_matmul(backend):
    """Under bf16/fp16 training, RoPE on the fp32 residual stream gives fp32 q/k beside a half-precision v:
    inside autocast every backend casts them to the autocast dtype; outside it mixed dtypes are refused."""
    q, k, v = make_qkv(1, 4, 2, 40, 16)
    v_half = v.detach().half().requires_grad_()
    with torch.autocast("cpu", dtype=torch.float16):
        got = run(lambda a, b, c: attention(a, b, c, pattern=TOY, scale=0.25, backend=backend), q, k, v_half)
    assert got[0].dtype == torch.float16 and got[1].dtype == torch.float32 and got[3].dtype == torch.float16
    assert_close(got, reference(q, k, v_half, TOY, 0.25), torch.float16)
    with pytest.raises(ValueError, match="share a dtype"):
        attention(q, k, v_half, pattern=TOY, scale=0.25, backend=backend)


# --- sliding window (Phi-3-mini: token i sees keys j with i - j < window) -------------------------------

def test_reference_sliding_window_is_the_per_position_rule():
    q, k, v = (t.detach() for t in make_qkv(1, 2, 1, 12, 4))
    out = attention(q, k, v, pattern=None, scale=0.5, backend="reference", window=5)
    for h in range(2):
        for i in range(12):
            lo = max(0, i - 4)
            weights = torch.softmax((k[0, 0, lo:i + 1] @ q[0, h, i]) * 0.5, dim=0)
            torch.testing.assert_close(out[0, h, i], weights @ v[0, 0, lo:i + 1])


@pytest.mark.parametrize("pattern,window,seq", [(None, 7, 45), (None, 16, 48), (None, 33, 70), (TOY, 20, 48),
                                                (None, 100, 40)])
def test_sliding_window_backends_match_reference(pattern, window, seq):
    """Windows cutting through blocks (7, 33), on a block edge (16), with a blocksparse pattern, and one
    longer than the sequence (full causal)."""
    q, k, v = make_qkv(2, 4, 2, seq, 16)
    want = run(lambda a, b, c: attention(a, b, c, pattern=pattern, scale=0.25, backend="reference", window=window),
               *(t.detach().clone().requires_grad_() for t in (q, k, v)))
    got = run(lambda a, b, c: attention(a, b, c, pattern=pattern, scale=0.25, backend="sdpa", window=window), q, k, v)
    assert_close(got, want, torch.float32)
    with torch.no_grad():
        flex = attention(q.detach(), k.detach(), v.detach(), pattern=pattern, scale=0.25, backend="flex",
                         window=window)
    torch.testing.assert_close(flex, want[0], **TOL[torch.float32])
    if window < seq:  # and the window really changes the result
        full = attention(q.detach(), k.detach(), v.detach(), pattern=pattern, scale=0.25, backend="reference")
        assert (full - want[0]).abs().max() > 1e-3


def test_flex_block_mask_skips_blocks_outside_the_window():
    from assay.kernels.attention_flex import flex_block_mask

    mask = flex_block_mask(None, 512, 1, "cpu", window=128)  # 128-token blocks: each row keeps 2 blocks
    dense = mask.to_dense()[0, 0]
    assert dense.sum(dim=-1).tolist() == [1, 2, 2, 2]


def test_triton_refuses_a_window_and_auto_avoids_it():
    from assay.kernels.attention import resolve_attention_backend

    q, k, v = (t.detach() for t in make_qkv(1, 4, 2, 32, 16))
    with pytest.raises(ValueError, match="no sliding window"):
        attention(q, k, v, pattern=None, scale=0.25, backend="triton", window=8)
    assert resolve_attention_backend("auto", torch.device("cuda"), None, window=8) == "flex"
    assert resolve_attention_backend("auto", torch.device("cuda"), TOY, window=8) == "flex"
    assert resolve_attention_backend("auto", torch.device("cpu"), None, window=8) == "sdpa"
    with pytest.raises(ValueError, match="window must be >= 0"):
        attention(q, k, v, pattern=None, scale=0.25, window=-1)
