"""torchrun integration: process-group set-up from the environment, DDP or FSDP2 wrapping, reductions.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) the backend is NCCL on GPU and gloo on CPU, also for a
single process (so `torchrun --nproc-per-node 1` exercises the same collectives as a larger job); without
torchrun everything degrades to a single process with no process group.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0  # this process among all (RANK)
    world_size: int = 1  # processes in the run (WORLD_SIZE)
    local_rank: int = 0  # this process on its machine (LOCAL_RANK): picks its GPU
    device: str = "cpu"  # the torch device it computes on
    launched: bool = False  # under torchrun, in its process group (even of one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.launched


def init_distributed() -> DistInfo:
    """Join the torchrun process group if there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    launched = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ  # torchrun sets it, also for one process
    cuda = torch.cuda.is_available()
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if launched and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        # left to interpreter teardown, the group's threads can abort the process ("terminate called without an
        # active exception") after all the work is done, failing the torchrun job
        atexit.register(_close_process_group)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device, launched=launched)


def _close_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, info: DistInfo, parallel: str) -> torch.nn.Module:
    """DDP or FSDP2 (`fully_shard` per block, then the root) around `model`; NCCL on GPUs, gloo on CPUs."""
    if not info.distributed:
        return model
    if parallel == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.local_rank] if info.device.startswith("cuda") else None)


def is_sharded(model: torch.nn.Module) -> bool:
    """FSDP2 shards the parameters: every rank must then take part in each forward (evaluation too)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def gradient_sync(model: torch.nn.Module, enabled: bool):
    """Accumulate without communicating when `enabled` is False: DDP's no_sync, FSDP2's gradient-sync switch."""
    if enabled:
        yield
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world_size
    return value


def min_across(value: int, info: DistInfo) -> int:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def gather_objects(obj, info: DistInfo) -> list:
    if not info.distributed:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
