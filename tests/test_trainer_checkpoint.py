"""Checkpoints load with torch.load(weights_only=True): a file holding arbitrary Python objects is refused with
what to do, without running them; a format-1 checkpoint (numpy RNG state as an array) converts exactly."""
import os
import random

import numpy as np
import pytest
import torch

from assay.trainer.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    set_rng_state,
    upgrade_checkpoint,
)


def _touch(path: str) -> None:
    with open(path, "w") as fh:
        fh.write("unpickling ran code")


class Boom:
    """Unpickling this calls _touch(marker): the code a malicious checkpoint would run."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _touch, (self.marker,)


def test_a_checkpoint_with_python_objects_is_refused_without_running_them(tmp_path):
    marker = str(tmp_path / "marker")
    path = checkpoint_path(str(tmp_path / "run"), 5)
    os.makedirs(os.path.dirname(path))
    torch.save({"model": {"w": torch.ones(2)}, "step": 5, "config": Boom(marker)}, path)
    for given in (path, str(tmp_path / "run")):  # the file itself, or the run folder it is the newest of
        with pytest.raises(CheckpointError, match="weights_only=True.*older assay.*Retrain") as err:
            load_checkpoint(given)
        assert path in str(err.value) and "upgrade_checkpoint" in str(err.value)
        assert "UNPICKLES the file, which RUNS ANY CODE IN IT" in str(err.value)  # said loudly, not "if you trust"
    assert not os.path.exists(marker)
    torch.load(path, weights_only=False)  # control: the payload is live, an unsafe load runs it
    assert os.path.exists(marker)


def _draws():
    return random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()


def test_a_format_1_checkpoint_is_refused_then_upgraded_with_the_same_rng_state(tmp_path):
    np.random.standard_normal()  # leaves a cached gaussian: part of the state to keep
    legacy = {**rng_state(), "numpy": np.random.get_state()}  # format 1 pickled numpy's tuple with its array
    expected = _draws()
    path = checkpoint_path(str(tmp_path / "run"), 3)
    os.makedirs(os.path.dirname(path))
    torch.save({"model": {"w": torch.arange(4.0)}, "step": 3, "ranks": [{"rng": legacy, "data": {"position": 7}}],
                "format": "assay-checkpoint-1"}, path)
    with pytest.raises(CheckpointError, match="older assay"):
        load_checkpoint(path)

    upgrade_checkpoint(path)
    ckpt = load_checkpoint(path)  # now weights_only-loadable
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["step"] == 3
    assert torch.equal(ckpt["model"]["w"], torch.arange(4.0))
    set_rng_state(ckpt["ranks"][0]["rng"])
    assert _draws() == expected


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    np.random.standard_normal()
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = _draws()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == expected
