"""PNG plots for an evaluation: the precision/recall curve and score histograms per label."""
from __future__ import annotations

import io
import os

import numpy as np

from assay.groundwork.atomic import write_bytes_atomic


def _save(fig, path: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    write_bytes_atomic(buf.getvalue(), path)
    return path


def plot_pr_curve(truth: np.ndarray, scores: np.ndarray, threshold: float, path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(truth, scores)
    keep = scores >= threshold
    p_at = (truth[keep] == 1).mean() if keep.any() else 0.0
    r_at = keep[truth == 1].mean() if (truth == 1).any() else 0.0
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, lw=1.5)
    ax.scatter([r_at], [p_at], color="red", zorder=3, label=f"threshold {threshold:.3g}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_score_histogram(labels: np.ndarray, scores: np.ndarray, threshold: float, path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(min(scores.min(), 0.0), max(scores.max(), 1.0), 31)
    for value in np.unique(labels):
        ax.hist(scores[labels == value], bins=bins, alpha=0.55, label=f"label {value:g}")
    ax.axvline(threshold, color="red", ls="--", label="threshold")
    ax.set(xlabel="score", ylabel="documents", title=title)
    ax.legend()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def write_plots(truth, labels, scores, threshold: float, out_dir: str, name: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    return [plot_pr_curve(truth, scores, threshold, os.path.join(out_dir, "pr_curve.png"), f"{name}: PR curve"),
            plot_score_histogram(labels, scores, threshold, os.path.join(out_dir, "score_histogram.png"),
                                 f"{name}: scores per label")]
