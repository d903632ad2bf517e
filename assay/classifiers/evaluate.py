"""`assay classify eval`: score held-out labels, pick the threshold by policy, record it in the model.

The threshold is chosen on the valid split (falling back to the evaluated split when valid cannot decide)
and the metrics are reported on the evaluated split (test by default), so the reported numbers are not
tuned on the data they describe.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from assay.classifiers.artifact import load_model, update_metadata
from assay.classifiers.config import POSITIVE_AT, ThresholdPolicy
from assay.classifiers.labels import read_labels
from assay.classifiers.metrics import evaluate_scores
from assay.classifiers.plots import write_plots
from assay.classifiers.threshold import choose_threshold
from assay.classifiers.train import truth_for
from assay.groundwork.atomic import write_bytes_atomic

#: the threshold split decides only with at least this many rows and both classes present; otherwise the
#: threshold is chosen on the evaluated split (a handful of rows gives a threshold that is noise)
MIN_THRESHOLD_ROWS = 10


def evaluate(model_dir: str, label_dir: str, policy: ThresholdPolicy | None = None, split: str = "test",
             threshold_split: str = "valid", report_dir: str | None = None) -> dict[str, Any]:
    policy = policy or ThresholdPolicy()
    clf, metadata = load_model(model_dir)
    source = metadata["label_source"]
    positive_at = float(source.get("positive_at", POSITIVE_AT))
    rows, summary = read_labels(label_dir, split)
    if not rows:
        raise ValueError(f"split {split!r} of {label_dir!r} is empty: use more labelled data or another --split")
    kind = summary["spec"]["kind"]
    truth = truth_for(rows, kind, positive_at)
    scores = clf.score([r["text"] for r in rows])

    pick_rows, _ = read_labels(label_dir, threshold_split)
    pick_truth = truth_for(pick_rows, kind, positive_at) if pick_rows else np.zeros(0)
    if len(pick_truth) >= MIN_THRESHOLD_ROWS and pick_truth.min() != pick_truth.max():
        choice = choose_threshold(pick_truth, clf.score([r["text"] for r in pick_rows]), policy)
        choice["chosen_on"] = threshold_split
    else:
        choice = choose_threshold(truth, scores, policy)
        choice["chosen_on"] = split
    rubric = np.array([r["label"] for r in rows]) if kind == "rubric" else None
    metrics = evaluate_scores(truth, scores, choice["threshold"], clf.task, rubric=rubric,
                              groups={"source": [r["source"] for r in rows], "domain": [r["domain"] for r in rows]})
    report = {"model_dir": model_dir, "labels": label_dir, "split": split, "kind": metadata["kind"],
              "task": clf.task, "threshold_choice": choice, "metrics": metrics}
    headline = {k: metrics[k] for k in ("n", "positives", "roc_auc", "precision", "recall", "f1",
                                         "spearman_rubric", "confusion")}
    update_metadata(model_dir, threshold=choice["threshold"], threshold_choice=choice,
                    metrics={"split": split, "labels": label_dir, **headline})
    if report_dir:
        labels = np.array([r["label"] for r in rows])
        report["plots"] = write_plots(truth, labels, scores, choice["threshold"], report_dir,
                                      f"{metadata['kind']} ({split})")
        write_bytes_atomic(json.dumps(report, indent=2, sort_keys=True).encode(),
                           os.path.join(report_dir, "metrics.json"))
    return report


def format_table(report: dict[str, Any]) -> str:
    """A plain-text summary: headline metrics, the per-threshold table, the per-source breakdown."""
    m, c = report["metrics"], report["threshold_choice"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{report['kind']} / {report['task']} on {report['split']}: n={m['n']} positives={m['positives']} "
             f"ROC-AUC={fmt(m['roc_auc'])} Spearman(rubric)={fmt(m['spearman_rubric'])}",
             f"threshold {c['threshold']:.4f} ({c['policy']}, chosen on {c['chosen_on']}): "
             f"P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f} confusion={m['confusion']}",
             "", f"{'threshold':>9} {'precision':>9} {'recall':>7} {'f1':>6} {'kept':>6}"]
    for row in m["per_threshold"]:
        lines.append(f"{row['threshold']:>9.2f} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                     f"{row['f1']:>6.3f} {row['kept_fraction']:>6.2f}")
    for group in ("source", "domain"):
        lines += ["", f"{'by ' + group:<32} {'n':>5} {'pos':>5} {'auc':>6} {'P':>6} {'R':>6} {'mean':>6}"]
        for key, g in list(m.get(f"by_{group}", {}).items())[:20]:
            lines.append(f"{key[:32]:<32} {g['n']:>5} {g['positives']:>5} {fmt(g['roc_auc']):>6} "
                         f"{g['precision']:>6.3f} {g['recall']:>6.3f} {fmt(g['mean_score']):>6}")
    return "\n".join(lines)
