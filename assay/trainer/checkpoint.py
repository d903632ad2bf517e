"""Checkpoints: model, optimizer, scheduler, RNG states, data position and config in one file per step.

Files are `<out>/checkpoints/step-0000100.pt`, written to a temporary name and renamed, so a kill never
leaves a half-written checkpoint that looks finished; the newest complete one is what a run resumes from.

A checkpoint holds only tensors and plain containers (dicts, lists, tuples, numbers, strings): it is loaded with
`torch.load(weights_only=True)`, so a tampered or foreign file cannot run code. Format 1 files (numpy RNG state
pickled as an array) are refused with what to do; `upgrade_checkpoint` converts one you wrote yourself (it unpickles
the file, which runs any code in it).
"""
from __future__ import annotations

import glob
import os
import pickle
import random
import re
from typing import Any

import numpy as np
import torch

from assay.groundwork.atomic import atomic_path

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = "assay-checkpoint-2"  # 2: weights_only-loadable (numpy RNG state as plain lists)
_NAME = re.compile(r"step-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is missing or does not fit the run; the message says what to do."""


def _numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state with the key array as a list of ints (weights_only cannot load arrays)."""
    state = np.random.get_state(legacy=False)
    return {**state, "state": {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}}


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    key = np.asarray(state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**state, "state": {"key": key, "pos": state["state"]["pos"]}})


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": _numpy_rng_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    _set_numpy_rng_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, CHECKPOINT_DIR, f"step-{step:07d}.pt")


def list_checkpoints(out_dir: str) -> list[str]:
    """Complete checkpoints of a run, oldest first."""
    paths = glob.glob(os.path.join(out_dir, CHECKPOINT_DIR, "step-*.pt"))
    return sorted((p for p in paths if _NAME.search(p)), key=lambda p: int(_NAME.search(p).group(1)))


def latest_checkpoint(out_dir: str) -> str | None:
    paths = list_checkpoints(out_dir)
    return paths[-1] if paths else None


def save_checkpoint(out_dir: str, step: int, payload: dict[str, Any], keep: int = 2) -> str:
    """Write atomically, then delete all but the newest `keep` checkpoints."""
    path = checkpoint_path(out_dir, step)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            os.remove(old)
    return path


def load_checkpoint(path: str) -> dict[str, Any]:
    """A checkpoint file, or the newest checkpoint of a run folder."""
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"no checkpoints under {path}/{CHECKPOINT_DIR}; train first with `assay train "
                                  "CONFIG`")
        path = found
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} not found; give a step-*.pt file or a training output folder")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        raise CheckpointError(
            f"{path} holds Python objects{f' ({found.group(1)})' if found else ''} that a safe load (torch.load "
            f"weights_only=True) refuses: it was written by an older assay (before {CHECKPOINT_FORMAT}) or by "
            "something else. Retrain or resume from a newer checkpoint. Only if you wrote this file yourself, convert "
            "it once with python -c \"from assay.trainer.checkpoint import upgrade_checkpoint; "
            f"upgrade_checkpoint('{path}')\""
            " -- WARNING: upgrade_checkpoint UNPICKLES the file, which RUNS ANY CODE IN IT: never use it on a "
            "checkpoint someone else gave you or you downloaded"
        ) from None


def upgrade_checkpoint(path: str) -> str:
    """Rewrite a format-1 checkpoint YOU WROTE in the current format; returns the path. The file is unpickled in
    full, which runs any code it holds: never call this on a checkpoint from someone else. The RNG states are kept
    exactly, so a run resumed from it stays bit-identical."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for rank in ckpt.get("ranks", []):
        numpy_state = rank["rng"]["numpy"]
        if isinstance(numpy_state, tuple):  # np.random.get_state()'s legacy tuple (name, key, pos, gauss...)
            name, key, pos, has_gauss, gauss = numpy_state
            rank["rng"]["numpy"] = {"bit_generator": name, "state": {"key": key.tolist(), "pos": int(pos)},
                                    "has_gauss": int(has_gauss), "gauss": float(gauss)}
    ckpt["format"] = CHECKPOINT_FORMAT
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def load_trained_model(path: str, device: str = "cpu"):
    """(Decoder in eval mode with the checkpoint's weights, its RunConfig, the checkpoint dict) for a checkpoint
    file or a run folder: what evaluation, export and the ablation runner all start from."""
    from assay.trainer.config_file import run_config_from_dict
    from assay.trainer.model import Decoder

    ckpt = load_checkpoint(path)
    run = run_config_from_dict(ckpt["config"])
    model = Decoder(run.model)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), run, ckpt
