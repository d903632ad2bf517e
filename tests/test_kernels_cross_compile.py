"""The fused Triton kernels compile for real GPUs (sm_90: H100/H200; sm_80: A100) on this CPU-only machine,
within each architecture's shared-memory limit, without register spills, and on the tensor cores.

scripts/kernels_cross_compile.py runs the kernels' own launch code with a compile-only Triton driver; it needs
TRITON_INTERPRET unset, so it runs in a subprocess (this suite sets TRITON_INTERPRET=1 for everything else).
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "kernels_cross_compile.py")
KERNELS = {"_attn_fwd", "_attn_bwd_dkdv", "_attn_bwd_dq", "_moe_gate_up_fwd", "_moe_grouped_matmul",
           "_moe_down_bwd", "_moe_expert_weight_grad", "_rmsnorm_fwd", "_rmsnorm_bwd"}


def cross_compile(*args):
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    proc = subprocess.run([sys.executable, SCRIPT, "--json", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, reports


@pytest.mark.parametrize("arch,cores", [(90, "wgmma"), (80, "mma")])
def test_every_kernel_compiles_within_the_gpus_limits(arch, cores):
    proc, reports = cross_compile("--arch", str(arch), "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:] + "\n".join(str(r) for r in reports if r["problems"])
    assert {r["kernel"] for r in reports} == KERNELS
    for r in reports:
        assert r["arch"] == arch and r["shared_bytes"] > 0 and 0 < r["registers"] <= 255 and r["local_bytes"] == 0
        if r["kernel"].startswith(("_attn", "_moe")):
            assert r["tensor_cores"] == cores, r  # bf16/fp16 dots run on the tensor cores
    tiled = [r for r in reports if r["case"] == "attention bf16 d=128 block=64"]
    assert {r["kernel"] for r in tiled} == {"_attn_fwd", "_attn_bwd_dkdv", "_attn_bwd_dq"}


def test_a_128_token_tile_at_head_dim_128_is_caught_and_the_default_tiles_it():
    """What the 64-token tile cap is for: one 128x128 tile's backward needs more shared memory than sm_90 has."""
    proc, reports = cross_compile("--only", "attention bf16 d=128 block=128", "--max-tile", "128")
    assert proc.returncode == 1
    too_big = [r for r in reports if any("shared memory" in p for p in r["problems"])]
    assert too_big and all(r["shared_bytes"] > 232448 for r in too_big)
    proc, reports = cross_compile("--only", "attention bf16 d=128 block=128")
    assert proc.returncode == 0 and len(reports) == 3 and not any(r["problems"] for r in reports)
