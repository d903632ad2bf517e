"""Whether the fused Triton kernels can run here (on a CUDA device, or anywhere under TRITON_INTERPRET=1), and
the autocast rule every entry point applies before it dispatches."""
from __future__ import annotations

import functools
import os

import torch


@functools.lru_cache(maxsize=None)
def triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_runs_on(device: torch.device) -> bool:
    """Triton kernels need CUDA tensors, or CPU tensors with TRITON_INTERPRET=1 (tests)."""
    if not triton_importable():
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def require_triton(device: torch.device, fallback: str) -> None:
    """Raise a clear error when a Triton kernel was asked for where it cannot run."""
    if not triton_runs_on(device):
        raise RuntimeError(f"the Triton kernels need a CUDA device (got {device}); use backend={fallback!r} here, "
                           "or set TRITON_INTERPRET=1 before importing kernels to run them (slowly) on the CPU")


def autocast_inputs(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Inside torch.autocast, cast the floating-point inputs to the autocast dtype, as autocast does for matmuls.

    Custom kernels are invisible to autocast: without this, a bf16 training step would hand them fp32 master
    weights or fp32 activations (RoPE on the fp32 residual stream) and they would run in fp32 or mix dtypes.
    Gradients flow back through the cast to the fp32 originals."""
    device_type = tensors[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in tensors)
