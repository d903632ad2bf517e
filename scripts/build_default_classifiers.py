"""Build the classifiers assay ships: assay/classifiers/shipped_models/{edu,knowledge}-fasttext.

Why: a new user's first `assay run` should already filter by educational value and knowledge level (the
Phi-3 recipe), without first labelling data, and it must do so on a crawl: news, shops, blogs and forums, not
only documentation. Both are quantised fastText models trained on the TRAIN splits, on the text the classifier
stage sees in a run (extracted with resiliparse, English by language ID):
- real-web pages rated by reading them on the rubric in data/realweb/RUBRIC.md (data/realweb/labels.jsonl;
  scripts/build_realweb_corpus.py rebuilds the pages from local clones of public repositories);
- the quality corpus's pages with their source category as a weak rating (documentation 3, changelogs 1, menus,
  spam, mail and chatter 0), recorded as weak labels in the metadata.
Models:
- edu: regression on the 0-5 rubric scale, as FineWeb-Edu scores pages (fastText's class probabilities, expected
  score); a page is kept at or above the threshold;
- knowledge: durable vs ephemeral (news of the day, announcements, changelogs, deals, gossip).
fastText, not a frozen sentence encoder: scripts/compare_edu_classifiers.py measures both on held-out sources;
the encoder costs ~0.1-0.2 s of CPU per page, which a default stage that must run at several times datatrove's
speed cannot pay (docs/quality.md has the comparison).
Thresholds come from source-held-out folds of the train splits (a mixed source's pages fold by site): each model
keeps TARGET_RECALL of the real-web pages rated >= 3 and of the documentation pages out of fold (the knowledge
model's job is to drop ephemeral pages, not teaching ones). The eval splits are scored only to report ROC-AUC
in the metadata; nothing is tuned on them.

Run:  .venv/bin/python scripts/page_texts.py data/quality/train R/train R/eval data/quality/eval --out T.jsonl
      .venv/bin/python scripts/build_default_classifiers.py T.jsonl
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))

from compare_edu_classifiers import FOLDS, NEGATIVE_GROUPS, fold_of, load  # noqa: E402

from assay.classifiers.artifact import save_model, update_metadata  # noqa: E402
from assay.classifiers.config import FastTextConfig  # noqa: E402
from assay.classifiers.fasttext_kind import FastTextClassifier  # noqa: E402
from assay.classifiers.metrics import at_threshold, roc_auc  # noqa: E402
from assay.classifiers.shipped import SHIPPED, SHIPPED_DIR  # noqa: E402

#: out-of-fold recall each model keeps, per kind of teaching page: real-web pages rated >= 3 by reading them, and
#: the quality corpus's documentation pages (weak: their source says so). The threshold is the lower of the two,
#: so neither kind pays for the other (documentation is what a crawl's best pages often are, and the eval split
#: of documentation sites has its own recall goal in docs/quality.md)
TARGET_RECALL = {"edu": {"rated": 0.88, "documentation": 0.95}, "knowledge": {"rated": 0.97, "documentation": 0.97}}
#: chosen by source-held-out ROC-AUC on train (docs/quality.md); quantised with a vocabulary cutoff: a few MB
#: instead of ~60 MB, for about 0.005 of held-out ROC-AUC
FASTTEXT = FastTextConfig(epoch=25, lr=0.2, dim=32, word_ngrams=2, min_count=2, bucket=200_000,
                          split_punctuation=True, quantize=True, quantize_cutoff=100_000)
TASKS = {
    # (classifier task, target of a row, rows it learns from)
    "edu": ("regression", lambda r: float(r["score"]), lambda r: True),
    "knowledge": ("binary", lambda r: 1.0 if r["durable"] == "durable" else 0.0, lambda r: r["durable"] is not None),
}


def teaching(row: dict) -> bool:
    return row["score"] >= 3


def fit(task: str, texts, y) -> FastTextClassifier:
    clf = FastTextClassifier(TASKS[task][0], FASTTEXT)
    clf.fit(texts, y)
    return clf


def out_of_fold(task: str, rows: list[dict], y: np.ndarray) -> np.ndarray:
    folds = np.array([fold_of(r) for r in rows])
    scores = np.zeros(len(rows))
    for k in range(FOLDS):
        held = folds == k
        if held.any():
            clf = fit(task, [r["text"] for r, h in zip(rows, held) if not h], y[~held])
            scores[held] = clf.score([r["text"] for r, h in zip(rows, held) if h])
    return scores


def recall_threshold(scores: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold that keeps `target` of the positives."""
    pos = np.sort(scores[positive])
    return float(pos[int(np.floor((1 - target) * len(pos)))])


def auc_report(rows: list[dict], scores: np.ndarray, positive) -> dict:
    y = np.array([1.0 if positive(r) else 0.0 for r in rows])
    out = {"roc_auc": round(float(roc_auc(y, scores)), 4)}
    for group, cats in NEGATIVE_GROUPS.items():
        mask = np.array([positive(r) or r["rated_category"] in cats for r in rows])
        if mask.any() and 0 < y[mask].sum() < mask.sum():
            out[f"roc_auc_vs_{group}"] = round(float(roc_auc(y[mask], scores[mask])), 4)
    return out


def build(task: str, train: list[dict], held: list[dict], texts_path: str) -> dict:
    _, target, uses = TASKS[task]
    rows = [r for r in train if uses(r)]
    y = np.array([target(r) for r in rows])
    good = np.array([teaching(r) for r in rows])
    print(f"{task}: {len(rows)} train rows ({sum(not r['weak'] for r in rows)} rated)", file=sys.stderr)
    oof = out_of_fold(task, rows, y)
    kinds = {"rated": good & np.array([not r["weak"] for r in rows]),
             "documentation": good & np.array([r["weak"] for r in rows])}
    per_kind = {k: recall_threshold(oof, mask, TARGET_RECALL[task][k]) for k, mask in kinds.items()}
    threshold = min(per_kind.values())
    positive = teaching if task == "edu" else (lambda r: r["durable"] == "durable")
    chosen = at_threshold(np.array(good, dtype=float), oof, threshold)
    clf = fit(task, [r["text"] for r in rows], y)
    eval_rows = [r for r in held if uses(r)]
    eval_scores = clf.score([r["text"] for r in eval_rows])
    eval_good = np.array([1.0 if teaching(r) else 0.0 for r in eval_rows])
    metrics = {
        "source_held_out_train": {**auc_report(rows, oof, positive), "folds": FOLDS,
                                  "thresholds_per_kind": {k: round(v, 4) for k, v in per_kind.items()},
                                  "recall_per_kind": {k: round(float(np.mean(oof[m] >= threshold)), 4)
                                                      for k, m in kinds.items()},
                                  "teaching_recall": round(chosen["recall"], 4),
                                  "teaching_precision": round(chosen["precision"], 4)},
        "eval_sources": {**auc_report(eval_rows, eval_scores, positive),
                         **{f"teaching_{k}": round(float(v), 4)
                            for k, v in at_threshold(eval_good, eval_scores, threshold).items()
                            if k in ("precision", "recall")}},
    }
    label_source = {"kind": "rubric", "dataset": ["data/realweb/labels.jsonl", "data/quality/train"],
                    "spec": {"rubric": "data/realweb/RUBRIC.md", "target": task,
                             "weak_labels": "quality-corpus source categories (documentation 3, changelogs 1, "
                                            "menus/spam/mail/chatter 0)",
                             "built_by": "scripts/build_default_classifiers.py"},
                    "annotators": sorted({r["rater"] for r in rows if r.get("rater")}),
                    "train_rows": len(rows), "rated_rows": sum(not r["weak"] for r in rows)}
    data_hash = hashlib.sha256("\n".join(f"{r['record_id']}\t{t}" for r, t in zip(rows, y)).encode()).hexdigest()
    model_dir = os.path.join(SHIPPED_DIR, SHIPPED[task])
    save_model(clf, model_dir, label_source, data_hash)
    update_metadata(model_dir, threshold=round(threshold, 4), metrics=metrics,
                    threshold_policy={"kind": "teaching_recall", "target_recall": TARGET_RECALL[task],
                                      "measured_on": f"{FOLDS} source-held-out folds of the train splits: real-web "
                                                     "pages rated >= 3, and documentation pages (weak labels)"})
    size = sum(os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir))
    print(f"{task}: threshold {threshold:.3f}; {metrics}; {size / 1e6:.2f} MB", file=sys.stderr)
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", help="scripts/page_texts.py's output over the train and eval corpora")
    parser.add_argument("--task", choices=sorted(TASKS), action="append")
    args = parser.parse_args(argv)
    rows = load(args.texts)
    train = [r for r in rows if r["train"]]
    held = [r for r in rows if not r["train"]]
    for task in args.task or sorted(TASKS):
        build(task, train, held, args.texts)


if __name__ == "__main__":
    main()
