"""The one interface both classifier kinds implement, so training, evaluation, artifacts and the Beam
stage never care which kind they hold."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

#: Rubric scores live on this scale; regression targets are clipped to it.
SCORE_MIN, SCORE_MAX = 0.0, 5.0


class TextClassifier(ABC):
    """fit on (texts, targets); score a batch of texts to floats; save to / load from a directory.

    Binary classifiers score P(positive) in [0, 1]; regression classifiers score the rubric scale 0..5.
    """

    kind: ClassVar[str]
    #: Files the kind writes into a model directory (all of them go into the content hash).
    model_files: ClassVar[tuple[str, ...]]

    def __init__(self, task: str):
        self.task = task

    @abstractmethod
    def fit(self, texts: Sequence[str], targets: Sequence[float]) -> None: ...

    @abstractmethod
    def score(self, texts: Sequence[str]) -> np.ndarray:
        """float64 scores, one per text, in input order."""

    @abstractmethod
    def save_files(self, directory: str) -> None:
        """Write `model_files` into an existing directory."""

    @classmethod
    @abstractmethod
    def load_files(cls, directory: str, metadata: dict[str, Any]) -> "TextClassifier":
        """Rebuild a fitted classifier from its files and its metadata's `settings`."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The settings that define this model, stored in the metadata and passed back to `load_files`."""

    def library_versions(self) -> dict[str, str]:
        import numpy

        return {"numpy": numpy.__version__}


def check_targets(task: str, targets: Sequence[float]) -> np.ndarray:
    """Targets as float64, with a clear error for values the task cannot learn from."""
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError("no training targets: build labels with `assay classify labels` first")
    if np.isnan(y).any():
        raise ValueError(f"{int(np.isnan(y).sum())} targets are missing (NaN): drop unlabelled rows first")
    if task == "binary":
        values = set(np.unique(y).tolist())
        if not values <= {0.0, 1.0}:
            raise ValueError(f"binary task needs 0/1 targets, got values {sorted(values)[:6]}: "
                             "use --task regression for rubric scores, or --positive-at to binarize")
        if len(values) < 2:
            raise ValueError("binary task needs both positives and negatives in the training split")
    elif (y < SCORE_MIN).any() or (y > SCORE_MAX).any():
        raise ValueError(f"regression targets must lie in [{SCORE_MIN}, {SCORE_MAX}] (the rubric scale)")
    return y
