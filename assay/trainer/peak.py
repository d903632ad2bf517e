"""A measured matmul peak (FLOP/s), the denominator of MFU when none is configured."""
from __future__ import annotations

import time

import torch


def measure_matmul_peak(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024,
                        repeats: int = 5) -> float:
    """Best-of-`repeats` throughput of an n x n x n matmul on `device` in `dtype`.

    The operands come from a generator of their own: drawing from torch's global RNG here would shift every
    later draw (MoE router jitter, dropout), so a run measuring its peak would differ from one configured with
    `peak_flops`, and a resumed run (whose RNG state was just restored) from an uninterrupted one."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.matmul(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best
