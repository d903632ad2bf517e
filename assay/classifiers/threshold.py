"""Threshold policies: the operating point follows from the measured precision/recall curve."""
from __future__ import annotations

from typing import Any

import numpy as np

from assay.classifiers.config import ThresholdPolicy


def pr_points(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, recall) for 'keep score >= t' at every distinct score, ascending t."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(truth, scores)
    return thresholds, precision[:-1], recall[:-1]


def choose_threshold(truth: np.ndarray, scores: np.ndarray, policy: ThresholdPolicy) -> dict[str, Any]:
    """The threshold the policy picks, with the precision/recall/F1 it gives on this data.

    best_f1: the threshold of maximal F1 (the higher one on ties, keeping fewer documents).
    target_precision: the lowest threshold whose precision reaches the target (most recall at that precision).
    target_recall: the highest threshold whose recall still reaches the target (most precision at that recall).
    """
    if truth.min() == truth.max():
        raise ValueError("threshold needs both positives and negatives in the evaluation split")
    t, p, r = pr_points(truth, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    if policy.kind == "best_f1":
        best = np.flatnonzero(f1 == f1.max())[-1]
    elif policy.kind == "target_recall":
        ok = np.flatnonzero(r >= policy.target_recall)  # recall falls as t rises: the last such t keeps least
        best = ok[-1]
    else:
        ok = np.flatnonzero(p >= policy.target_precision)
        if not len(ok):
            raise ValueError(f"no threshold reaches precision {policy.target_precision} (best is {p.max():.3f}): "
                             "lower the target or improve the classifier")
        best = ok[0]
    return {"policy": policy.kind,
            "target_precision": policy.target_precision if policy.kind == "target_precision" else None,
            "target_recall": policy.target_recall if policy.kind == "target_recall" else None,
            "threshold": float(t[best]), "precision": float(p[best]), "recall": float(r[best]),
            "f1": float(f1[best])}
