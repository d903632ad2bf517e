"""Train a classifier kind on the train split of a label dataset and save a sealed model directory."""
from __future__ import annotations

from typing import Any

import numpy as np

from assay.classifiers.artifact import save_model
from assay.classifiers.base import TextClassifier
from assay.classifiers.config import ClassifierTrainConfig
from assay.classifiers.kinds import new_classifier
from assay.classifiers.labels import labels_hash, read_labels


def targets_for(rows: list[dict[str, Any]], label_kind: str, task: str, positive_at: float) -> np.ndarray:
    """Training/eval targets: rubric scores as-is for regression, binarized at `positive_at` for binary."""
    y = np.array([r["label"] for r in rows], dtype=np.float64)
    if task == "regression":
        if label_kind != "rubric":
            raise ValueError("regression needs rubric scores; reference labels are 0/1: use --task binary")
        return y
    return (y >= positive_at).astype(np.float64) if label_kind == "rubric" else y


def truth_for(rows: list[dict[str, Any]], label_kind: str, positive_at: float) -> np.ndarray:
    """Binary truth for evaluation, whatever the task."""
    return targets_for(rows, label_kind, "binary", positive_at)


def train(label_dir: str, cfg: ClassifierTrainConfig, model_dir: str) -> tuple[TextClassifier, dict[str, Any]]:
    """Fit on the train split; returns the fitted classifier and the metadata of the saved model directory."""
    rows, summary = read_labels(label_dir, "train")
    label_kind = summary["spec"]["kind"]
    y = targets_for(rows, label_kind, cfg.task, cfg.positive_at)
    clf = new_classifier(cfg)
    clf.fit([r["text"] for r in rows], y)
    label_source = {"kind": label_kind, "dataset": label_dir, "spec": summary["spec"],
                    "annotators": summary.get("annotators", []), "positive_at": cfg.positive_at,
                    "train_rows": len(rows)}
    return clf, save_model(clf, model_dir, label_source, labels_hash(rows))
