"""The threshold policy picks what the metrics say: checked against an independent sweep of every
candidate threshold with metrics.at_threshold."""
from __future__ import annotations

import numpy as np
import pytest

from assay.classifiers.config import ThresholdPolicy
from assay.classifiers.metrics import at_threshold, evaluate_scores
from assay.classifiers.threshold import choose_threshold


def _scored(seed: int, n: int = 400):
    """Overlapping score distributions for two classes, as a real classifier gives."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.4).astype(float)
    scores = np.clip(rng.normal(0.35 + 0.3 * truth, 0.18), 0, 1)
    return truth, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_f1_is_the_maximum_of_the_sweep(seed):
    truth, scores = _scored(seed)
    choice = choose_threshold(truth, scores, ThresholdPolicy("best_f1"))
    sweep = [at_threshold(truth, scores, t) for t in np.unique(scores)]
    best = max(row["f1"] for row in sweep)
    assert choice["f1"] == pytest.approx(best)
    assert at_threshold(truth, scores, choice["threshold"])["f1"] == pytest.approx(best)
    assert choice["threshold"] == max(r["threshold"] for r in sweep if r["f1"] == pytest.approx(best))


@pytest.mark.parametrize("target", [0.7, 0.8, 0.9])
def test_target_precision_is_the_lowest_threshold_reaching_it(target):
    truth, scores = _scored(7)
    choice = choose_threshold(truth, scores, ThresholdPolicy("target_precision", target))
    at = at_threshold(truth, scores, choice["threshold"])
    assert at["precision"] >= target and at["precision"] == pytest.approx(choice["precision"])
    lower = [t for t in np.unique(scores) if t < choice["threshold"]]
    assert all(at_threshold(truth, scores, t)["precision"] < target for t in lower)


@pytest.mark.parametrize("target", [0.8, 0.9, 0.97])
def test_target_recall_is_the_highest_threshold_keeping_it(target):
    truth, scores = _scored(5)
    choice = choose_threshold(truth, scores, ThresholdPolicy("target_recall", target_recall=target))
    at = at_threshold(truth, scores, choice["threshold"])
    assert at["recall"] >= target and at["recall"] == pytest.approx(choice["recall"])
    higher = [t for t in np.unique(scores) if t > choice["threshold"]]
    assert all(at_threshold(truth, scores, t)["recall"] < target for t in higher)
    assert ThresholdPolicy.parse(f"recall:{target}") == ThresholdPolicy("target_recall", target_recall=target)


def test_unreachable_precision_is_a_clear_error():
    truth, scores = _scored(3)
    scores = np.where(truth == 1, 0.5, scores)  # positives never rank above the best negatives
    with pytest.raises(ValueError, match="no threshold reaches precision"):
        choose_threshold(truth, scores, ThresholdPolicy("target_precision", 1.0))


def test_policy_text_parses_and_bad_text_says_what_to_use():
    assert ThresholdPolicy.parse("precision:0.95") == ThresholdPolicy("target_precision", 0.95)
    assert ThresholdPolicy.parse("best_f1") == ThresholdPolicy()
    with pytest.raises(ValueError, match="precision:P"):
        ThresholdPolicy.parse("f1")


def test_metrics_agree_with_sklearn_and_count_the_confusion_matrix():
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

    truth, scores = _scored(11)
    m = evaluate_scores(truth, scores, 0.5, "binary", rubric=scores * 5,
                        groups={"source": ["a" if i % 3 else "b" for i in range(len(truth))]})
    assert m["roc_auc"] == pytest.approx(roc_auc_score(truth, scores))
    assert m["f1"] == pytest.approx(f1_score(truth, scores >= 0.5))
    tn, fp, fn, tp = confusion_matrix(truth, scores >= 0.5).ravel()
    assert m["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    assert m["spearman_rubric"] == pytest.approx(1.0)
    assert sum(g["n"] for g in m["by_source"].values()) == len(truth)
    assert [r["threshold"] for r in m["per_threshold"]] == sorted(r["threshold"] for r in m["per_threshold"])
