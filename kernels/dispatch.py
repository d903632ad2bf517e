"""Whether the fused Triton kernels can run here: on a CUDA device, or anywhere under TRITON_INTERPRET=1."""
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
