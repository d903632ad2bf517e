"""Learning-rate schedules as a multiplier of the peak rate: linear warmup, then cosine or WSD.

WSD (warmup-stable-decay) holds the peak rate and decays linearly to the floor over the last
`wsd_decay_fraction` of training, so a run can be extended from any stable-phase checkpoint.
"""
from __future__ import annotations

import math

import torch

from assay.trainer.config import TrainConfig


def lr_multiplier(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Multiplier at optimizer step `step` (0-based), in [min_lr_ratio, 1]."""
    floor = cfg.min_lr_ratio
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_steps = max(1, int(round(cfg.wsd_decay_fraction * total_steps)))
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start + 1) / decay_steps)
    return 1.0 - (1.0 - floor) * progress


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg, total_steps))
