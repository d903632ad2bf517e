"""Held-out metrics for a scored split: ROC-AUC, precision/recall/F1 per threshold, Spearman with the
rubric score, confusion matrix, and the same per source and per domain."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


def at_threshold(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    keep = scores >= threshold
    tp = int(np.sum(keep & (truth == 1)))
    fp = int(np.sum(keep & (truth == 0)))
    fn = int(np.sum(~keep & (truth == 1)))
    tn = int(np.sum(~keep & (truth == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
            "kept_fraction": float(keep.mean()) if len(keep) else 0.0,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(truth) == 0 or truth.min() == truth.max():
        return None
    return float(roc_auc_score(truth, scores))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def threshold_grid(scores: np.ndarray, task: str, steps: int = 20) -> np.ndarray:
    hi = 1.0 if task == "binary" else 5.0
    return np.round(np.linspace(0.0, hi, steps + 1), 6)


def summarize(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    return {"n": int(len(truth)), "positives": int(truth.sum()), "roc_auc": roc_auc(truth, scores),
            "mean_score": float(scores.mean()) if len(scores) else None, **at_threshold(truth, scores, threshold)}


def evaluate_scores(truth: np.ndarray, scores: np.ndarray, threshold: float, task: str,
                    rubric: np.ndarray | None = None, groups: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """All metrics at the chosen threshold, the per-threshold table, and per-group breakdowns."""
    out: dict[str, Any] = summarize(truth, scores, threshold)
    out["spearman_rubric"] = spearman(rubric, scores) if rubric is not None else None
    out["per_threshold"] = [at_threshold(truth, scores, t) for t in threshold_grid(scores, task)]
    for name, keys in (groups or {}).items():
        index: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            index[key or "(none)"].append(i)
        out[f"by_{name}"] = {k: summarize(truth[ix], scores[ix], threshold)
                             for k, ix in sorted(index.items(), key=lambda kv: -len(kv[1]))}
    return out
