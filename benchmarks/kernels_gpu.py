"""Kernel benchmarks: each fused kernel against a named peer measured in the same run.

GPU sections (need CUDA): blocksparse attention forward+backward vs dense SDPA (flash) and vs FlexAttention with
the same mask at 4K-32K tokens; fused MoE vs the per-expert loop; fused RMSNorm vs torch; chunked linear
cross-entropy vs full logits (time and peak memory). Goals: blocksparse >= 0.8 x (1 / density) over dense flash
at 16K, >= 1.0x Flex; MoE >= 5x the loop.

CPU section (`--cpu-memory`): peak resident memory of the chunked linear cross-entropy vs full logits, each
measured in a fresh subprocess.

    python benchmarks/kernels_gpu.py                 # GPU sections
    python benchmarks/kernels_gpu.py --cpu-memory    # CPU memory of linear cross-entropy
"""
from __future__ import annotations

import argparse
import datetime
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# ---------------------------------------------------------------- CPU memory (linear cross-entropy)
def _measure_linear_ce(kind: str, rows: int, vocab: int, dim: int) -> None:
    """Child process: forward+backward once, print the growth of peak RSS in MiB."""
    import torch
    import torch.nn.functional as F

    from assay.kernels.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(rows, dim, requires_grad=True)
    weight = torch.randn(vocab, dim, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "full":
        loss = F.cross_entropy(hidden @ weight.T, targets)
    else:
        loss = linear_cross_entropy(hidden, weight, targets)
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{(peak - base) / 1024:.1f} {loss.item():.6f}")


def cpu_memory(rows: int, vocab: int, dim: int) -> None:
    results = {}
    for kind in ("full", "chunked"):
        out = subprocess.run([sys.executable, __file__, "--_child", kind, str(rows), str(vocab), str(dim)],
                             check=True, capture_output=True, text=True).stdout.split()
        results[kind] = (float(out[0]), float(out[1]))
    logits_mib = rows * vocab * 4 / 2 ** 20
    print(f"linear cross-entropy, CPU, N={rows} V={vocab} d={dim} (fp32 logits = {logits_mib:.0f} MiB)")
    for kind, (mib, loss) in results.items():
        print(f"  {kind:8s} peak RSS growth {mib:8.1f} MiB   loss {loss:.6f}")
    print(f"  chunked / full peak memory: {results['chunked'][0] / results['full'][0]:.3f}")


# ---------------------------------------------------------------- GPU helpers
def _bench(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=5, rep=40)


def _fwd_bwd(fn, inputs):
    import torch

    def step():
        out = fn(*inputs)
        torch.autograd.grad(out, inputs, torch.ones_like(out))
    return step


def bench_attention(seq_lens: list[int]) -> None:
    import torch

    from assay.kernels.attention import attention
    from assay.kernels.blocksparse_pattern import BlockSparsePattern

    heads, kv_heads, dim = 32, 8, 128
    pattern = BlockSparsePattern(block_size=64, local_blocks=16, vertical_stride=8, num_heads=heads)
    scale = dim ** -0.5
    print(f"\nattention fwd+bwd, bf16, B=1 Hq={heads} Hkv={kv_heads} D={dim}, pattern {pattern}")
    print(f"{'T':>6} {'density':>8} {'dense sdpa ms':>14} {'flex ms':>9} {'triton ms':>10} "
          f"{'vs dense':>9} {'goal':>6} {'vs flex':>8} {'TFLOP/s':>8}")
    for seq in seq_lens:
        gen = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(1, heads, seq, dim, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_()
        k = torch.randn(1, kv_heads, seq, dim, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_()
        v = torch.randn_like(k).requires_grad_()
        density = pattern.density(seq) if seq <= 8192 else _block_density(pattern, seq)
        times = {}
        for name, pat, backend in (("dense", None, "sdpa"), ("flex", pattern, "flex"), ("triton", pattern, "triton")):
            fn = lambda a, b, c, p=pat, be=backend: attention(a, b, c, pattern=p, scale=scale, backend=be)  # noqa: E731
            times[name] = _bench(_fwd_bwd(fn, (q, k, v)))
        flops = 3.5 * 4 * heads * dim * seq * (seq + 1) / 2 * density
        print(f"{seq:>6} {density:>8.3f} {times['dense']:>14.2f} {times['flex']:>9.2f} {times['triton']:>10.2f} "
              f"{times['dense'] / times['triton']:>8.2f}x {0.8 / density:>5.2f}x "
              f"{times['flex'] / times['triton']:>7.2f}x {flops / times['triton'] / 1e9:>8.1f}")


def _block_density(pattern, seq: int) -> float:
    """Block-level density (exact token density needs an H x T x T mask, too big past 8K)."""
    blocks = pattern.block_mask(pattern.num_blocks(seq))
    nb = blocks.shape[-1]
    return float(blocks.sum()) / (pattern.num_heads * nb * (nb + 1) / 2)


def bench_moe() -> None:
    import torch

    from assay.kernels.moe import moe_ffn

    tokens, d_model, ffn = 8192, 2048, 1408
    print(f"\nMoE SwiGLU fwd+bwd, bf16, N={tokens} d={d_model} ffn={ffn}")
    print(f"{'E':>4} {'k':>2} {'loop ms':>9} {'triton ms':>10} {'speedup':>8} {'TFLOP/s':>8}")
    for experts, top_k in ((8, 1), (16, 2), (64, 2)):
        gen = torch.Generator(device="cuda").manual_seed(0)
        mk = lambda *s: (torch.randn(*s, device="cuda", generator=gen) * s[-1] ** -0.5).bfloat16().requires_grad_()  # noqa: E731
        x, wg, wu, wd = mk(tokens, d_model), mk(experts, ffn, d_model), mk(experts, ffn, d_model), mk(experts, d_model,
                                                                                                      ffn)
        logits = torch.randn(tokens, experts, device="cuda", generator=gen)
        weights, ids = torch.softmax(logits, -1).topk(top_k, dim=-1)
        weights = weights.bfloat16().requires_grad_()
        times = {}
        for backend in ("reference", "triton"):
            fn = lambda a, b, c, d, w, be=backend: moe_ffn(a, b, c, d, ids, w, backend=be)  # noqa: E731
            times[backend] = _bench(_fwd_bwd(fn, (x, wg, wu, wd, weights)))
        flops = 3 * 3 * 2 * tokens * top_k * d_model * ffn
        print(f"{experts:>4} {top_k:>2} {times['reference']:>9.2f} {times['triton']:>10.2f} "
              f"{times['reference'] / times['triton']:>7.2f}x {flops / times['triton'] / 1e9:>8.1f}")


def bench_rmsnorm() -> None:
    import torch

    from assay.kernels.rmsnorm import rms_norm

    x = torch.randn(16384, 4096, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.ones(4096, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    times = {be: _bench(_fwd_bwd(lambda a, b, be=be: rms_norm(a, b, backend=be), (x, w))) for be in ("torch", "triton")}
    print(f"\nRMSNorm fwd+bwd 16384x4096 bf16: torch {times['torch']:.3f} ms, triton {times['triton']:.3f} ms, "
          f"speedup {times['torch'] / times['triton']:.2f}x")


def bench_linear_ce_gpu() -> None:
    import torch
    import torch.nn.functional as F

    from assay.kernels.linear_cross_entropy import LinearCrossEntropyConfig, linear_cross_entropy

    rows, vocab, dim = 16384, 32064, 2048
    h = torch.randn(rows, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(vocab, dim, device="cuda") * dim ** -0.5).bfloat16().requires_grad_()
    t = torch.randint(0, vocab, (rows,), device="cuda")
    cfg = LinearCrossEntropyConfig(chunk_rows=2048)
    fns = {"full": lambda: F.cross_entropy((h @ w.T).float(), t),
           "chunked": lambda: linear_cross_entropy(h, w, t, config=cfg)}
    print(f"\nlinear cross-entropy fwd+bwd, N={rows} V={vocab} d={dim} bf16")
    for name, fn in fns.items():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        ms = _bench(lambda: torch.autograd.grad(fn(), (h, w)))
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        print(f"  {name:8s} {ms:8.2f} ms   peak extra memory {peak:9.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-memory", action="store_true", help="only the CPU memory measurement")
    parser.add_argument("--seq-lens", default="4096,8192,16384,32768")
    parser.add_argument("--sections", default="moe,rmsnorm,linear_ce,attention",
                        help="GPU sections to run, in this order (the quick ones first, so a time limit that stops "
                             "the run still leaves their rows)")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=32064)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        kind, rows, vocab, dim = args._child
        _measure_linear_ce(kind, int(rows), int(vocab), int(dim))
        return
    if args.cpu_memory:
        print(f"machine: CPU, {datetime.date.today()}")
        cpu_memory(args.rows, args.vocab, args.dim)
        return
    sections = {"attention": lambda: bench_attention([int(s) for s in args.seq_lens.split(",")]),
                "moe": bench_moe, "rmsnorm": bench_rmsnorm, "linear_ce": bench_linear_ce_gpu}
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in sections]
    if unknown:
        sys.exit(f"kernels_gpu.py: unknown section(s) {unknown}; choose from {', '.join(sections)}")
    import torch

    if not torch.cuda.is_available():
        sys.exit("kernels_gpu.py: no CUDA GPU found. Run it on a GPU machine, or run "
                 "`python benchmarks/kernels_gpu.py --cpu-memory` for the CPU memory measurement.")
    print(f"machine: {torch.cuda.get_device_name()}, torch {torch.__version__}, {datetime.date.today()}")
    for name in chosen:
        sections[name]()


if __name__ == "__main__":
    main()
