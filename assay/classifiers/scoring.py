"""How a saved classifier scores documents as a stage (of `assay run` or `assay classify score`): which model,
the score column it writes, and the threshold that decides drops (the model's own, from `assay classify eval`,
unless one is given).

    [[classifiers]]             # in a run config
    model_dir = "models/edu-fasttext"
    column = "edu_cls"
    threshold = 0.5             # omit: the threshold `assay classify eval` wrote into the model's metadata
    mode = "drop"               # or "annotate": keep everything, only add the column
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from assay.classifiers.artifact import verify_model_dir

#: a scoring stage drops documents below its threshold, or only adds the score column
Mode = Literal["drop", "annotate"]
MODES = get_args(Mode)


@dataclass
class ClassifierStageConfig:
    """One `[[classifiers]]` table: a saved model scoring documents as a stage."""

    model_dir: str  # a folder written by `assay classify train` (checked against its metadata)
    column: str  # the score column it adds (and the stage's name, classify:<column>)
    threshold: float | None = None  # None: the threshold in the model's metadata
    mode: Mode = "drop"  # drop documents below the threshold, or only annotate them
    max_batch_size: int | None = None  # None: the handler's default for the model kind

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"classifier stage mode must be one of {MODES}, got {self.mode!r}")
        if not self.column or not self.column.isidentifier():
            raise ValueError(f"classifier column {self.column!r} must be a plain identifier such as edu_cls")

    @property
    def stage_name(self) -> str:
        return f"classify:{self.column}"


def resolve_threshold(cfg: ClassifierStageConfig) -> float | None:
    """The threshold the stage applies; a drop stage without one is a configuration error."""
    metadata = verify_model_dir(cfg.model_dir)
    threshold = cfg.threshold if cfg.threshold is not None else metadata.get("threshold")
    if threshold is None and cfg.mode == "drop":
        raise ValueError(f"model {cfg.model_dir!r} has no threshold in its metadata: run "
                         "`assay classify eval` on it, set `threshold`, or use mode = \"annotate\"")
    return None if threshold is None else float(threshold)
