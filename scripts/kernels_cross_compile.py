"""Compile every fused Triton kernel for a GPU architecture on a machine without a GPU, and report its resources.

The CPU test suite runs the kernels under TRITON_INTERPRET=1, which checks their numbers but not that they
compile for real hardware: the interpreter accepts tiles that need more shared memory than an SM has, register
pressure that spills, and dots that never reach the tensor cores. This script drives the real launch code
(assay.kernels.attention_triton, assay.kernels.moe_triton, assay.kernels.rmsnorm) with CPU tensors, but with Triton's
active
driver replaced by one that names the target architecture and every launch turned into a compile-only warm-up.
Each distinct kernel is compiled by Triton's own pipeline down to a cubin with the ptxas that ships in the
Triton wheel, and `cuobjdump -res-usage` reads its registers, shared memory and local (spill) memory.

    python scripts/kernels_cross_compile.py                  # sm_90 (H100/H200), a table
    python scripts/kernels_cross_compile.py --arch 80 --json # sm_80 (A100), one JSON object per kernel

Exit status 1 when a kernel does not compile, needs more shared memory than the architecture's per-block limit,
spills registers to local memory, or (bf16/fp16 dots) does not use tensor-core instructions. Run it in its own
process: it patches Triton's driver and must see TRITON_INTERPRET unset or 0 when assay/kernels/ is imported.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Most shared memory one thread block may use, in bytes (CUDA programming guide, "compute capabilities").
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
# Per-thread register ceiling (the same on all of these).
MAX_REGISTERS = 255


@dataclass
class KernelReport:
    kernel: str
    case: str
    arch: int
    num_warps: int = 0
    num_stages: int = 0
    registers: int = 0
    shared_bytes: int = 0
    local_bytes: int = 0
    tensor_cores: str = ""  # "wgmma", "mma", or "" (no matrix instructions)
    problems: list[str] = field(default_factory=list)


class _CompileOnlyDriver:
    """Stands in for Triton's CUDA driver: names the target; never launches (run() is made a warm-up)."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        import torch

        return torch.device("cpu")


def _install(arch: int, compiled: list) -> None:
    """Point Triton at the compile-only driver and turn every launch into a warm-up that records the kernel."""
    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

    import assay.kernels.dispatch

    driver.set_active(_CompileOnlyDriver(arch))
    original = JITFunction.run

    def compile_only(self, *args, grid, warmup, **kwargs):
        kernel = original(self, *args, grid=grid, warmup=True, **kwargs)
        compiled.append((self.fn.__name__, kernel))
        return kernel

    JITFunction.run = compile_only
    assay.kernels.dispatch.triton_runs_on = lambda device: True  # the launch wrappers' CUDA check


def _cases(quick: bool, max_tile: int | None):
    """(case name, callable running one forward+backward through the launch code) for each configuration."""
    import torch

    def attention_case(dtype, head_dim, block):
        from assay.kernels.attention_triton import triton_attention
        from assay.kernels.blocksparse_pattern import BlockSparsePattern

        def run():
            seq = 4 * block
            q = torch.randn(1, 4, seq, head_dim, dtype=dtype, requires_grad=True)
            k = torch.randn(1, 2, seq, head_dim, dtype=dtype, requires_grad=True)
            v = torch.randn(1, 2, seq, head_dim, dtype=dtype, requires_grad=True)
            pattern = BlockSparsePattern(block, 2, 3, num_heads=4)
            triton_attention(q, k, v, pattern, head_dim ** -0.5, max_tile=max_tile).sum().backward()
        return run

    def moe_case(dtype):
        from assay.kernels.moe_triton import triton_moe_ffn

        def run():
            x = torch.randn(64, 128, dtype=dtype, requires_grad=True)
            wg, wu = (torch.randn(4, 96, 128, dtype=dtype, requires_grad=True) for _ in range(2))
            wd = torch.randn(4, 128, 96, dtype=dtype, requires_grad=True)
            ids = torch.randint(0, 4, (64, 2))
            w = torch.rand(64, 2, dtype=dtype, requires_grad=True)
            triton_moe_ffn(x, wg, wu, wd, ids, w).sum().backward()
        return run

    def rmsnorm_case(dtype, cols):
        from assay.kernels.rmsnorm import rms_norm

        def run():
            x = torch.randn(8, cols, dtype=dtype, requires_grad=True)
            w = torch.ones(cols, dtype=dtype, requires_grad=True)
            rms_norm(x, w, 1e-5, backend="triton").sum().backward()
        return run

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    for name, dtype in dtypes.items():
        for head_dim in ((64, 128) if quick or name == "fp16" else (64, 96, 128, 256)):
            for block in ((64,) if quick or name == "fp16" else (32, 64, 128)):
                yield f"attention {name} d={head_dim} block={block}", attention_case(dtype, head_dim, block)
        yield f"moe {name}", moe_case(dtype)
    for cols in ((3072,) if quick else (1024, 3072, 8192)):
        yield f"rmsnorm bf16 cols={cols}", rmsnorm_case(torch.bfloat16, cols)


def _resources(cubin: bytes) -> dict[str, int]:
    """REG / SHARED / LOCAL of a cubin, read by the cuobjdump that ships with Triton."""
    from triton import knobs

    tool = Path(knobs.nvidia.ptxas.path).with_name("cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
        fh.write(cubin)
        fh.flush()
        text = subprocess.run([str(tool), "-res-usage", fh.name], check=True, capture_output=True, text=True).stdout
    found = dict(re.findall(r"\b(REG|SHARED|LOCAL):(\d+)", text))
    return {k: int(v) for k, v in found.items()}


def _report(name: str, case: str, kernel, arch: int) -> KernelReport:
    md = kernel.metadata
    res = _resources(kernel.asm["cubin"])
    ptx = kernel.asm.get("ptx", "")
    cores = "wgmma" if "wgmma." in ptx else ("mma" if re.search(r"\bmma\.sync", ptx) else "")
    rep = KernelReport(kernel=name, case=case, arch=arch, num_warps=md.num_warps, num_stages=md.num_stages,
                       registers=res.get("REG", 0), shared_bytes=max(md.shared, res.get("SHARED", 0)),
                       local_bytes=res.get("LOCAL", 0), tensor_cores=cores)
    limit = SHARED_LIMIT.get(arch)
    if limit is not None and rep.shared_bytes > limit:
        rep.problems.append(f"needs {rep.shared_bytes} B of shared memory, sm_{arch} allows {limit} per block")
    if rep.local_bytes:
        rep.problems.append(f"spills: {rep.local_bytes} B of local memory per thread")
    if rep.registers > MAX_REGISTERS:
        rep.problems.append(f"{rep.registers} registers per thread (limit {MAX_REGISTERS})")
    uses_dot = name.startswith(("_attn", "_moe"))
    if uses_dot and not cores and "fp32" not in case:
        rep.problems.append("no tensor-core (mma/wgmma) instructions in a bf16/fp16 dot kernel")
    return rep


def cross_compile(arch: int, quick: bool = False, max_tile: int | None = None, only: str = "") -> list[KernelReport]:
    """Compile each kernel of each case for sm_<arch>; one report per distinct kernel of a case.
    `only` keeps the cases whose name contains it; `max_tile` overrides the attention kernel's tile cap."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET (or set it to 0): the interpreter compiles nothing")
    compiled: list = []
    _install(arch, compiled)
    reports = []
    for case, run in _cases(quick, max_tile):
        if only not in case:
            continue
        start, seen = len(compiled), set()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - a compile error is a finding, reported with its case
            reports.append(KernelReport(kernel="?", case=case, arch=arch,
                                        problems=[f"does not compile: {type(exc).__name__}: {str(exc)[:400]}"]))
            continue
        for name, kernel in compiled[start:]:
            if id(kernel) in seen:  # the same specialization launched twice in one case (Triton caches it)
                continue
            seen.add(id(kernel))
            reports.append(_report(name, case, kernel, arch))
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10: 90 (H100/H200), 80 (A100)")
    parser.add_argument("--quick", action="store_true", help="one block size and one RMSNorm width")
    parser.add_argument("--json", action="store_true", help="one JSON object per kernel instead of a table")
    parser.add_argument("--only", default="", help="only the cases whose name contains this, e.g. 'attention'")
    parser.add_argument("--max-tile", type=int, default=None,
                        help="override the attention tile cap (assay.kernels.attention_triton.tile_cap: 64, or 32 "
                             "above head dim 128); 128 shows why it is 64")
    args = parser.parse_args()
    reports = cross_compile(args.arch, args.quick, args.max_tile, args.only)
    if args.json:
        for rep in reports:
            print(json.dumps(asdict(rep)))
    else:
        print(f"Triton kernels compiled for sm_{args.arch} (shared-memory limit per block "
              f"{SHARED_LIMIT.get(args.arch, '?')} B)")
        print(f"{'case':32s} {'kernel':26s} {'warps':>5} {'stages':>6} {'regs':>4} {'shared B':>9} "
              f"{'spill B':>7} {'cores':>6}  problems")
        for r in reports:
            print(f"{r.case:32s} {r.kernel:26s} {r.num_warps:>5} {r.num_stages:>6} {r.registers:>4} "
                  f"{r.shared_bytes:>9} {r.local_bytes:>7} {r.tensor_cores or '-':>6}  {'; '.join(r.problems)}")
    bad = [r for r in reports if r.problems]
    if bad:
        print(f"{len(bad)} of {len(reports)} kernels have problems", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
