"""When `[train] compile = "auto"` compiles the model.

On the CPU torch.compile fuses the element-wise work around the matmuls (benchmarks/train_throughput.py:
about 1.3x transformers' eager step, where assay's eager step is level with it), but a cold compile costs
20-120 s on 2 cores. So "auto" compiles CPU runs long enough to repay that, and only where inductor can
build its C++ kernels; on GPUs it stays eager until measured there (the Triton kernels are already fused).
"""
from __future__ import annotations

import shutil

#: a CPU run of this many steps or more is compiled by "auto": at about 1 s a step (mini-10m, 2 cores) a 20-120 s
#: compile is repaid several times over by a 1.3x faster step
AUTO_MIN_STEPS = 1000


def can_compile_on_cpu() -> bool:
    """Inductor's CPU backend needs a C++ compiler."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def should_compile(setting: bool | str, device: str, total_steps: int) -> bool:
    if setting != "auto":
        return bool(setting)
    return device == "cpu" and total_steps >= AUTO_MIN_STEPS and can_compile_on_cpu()
