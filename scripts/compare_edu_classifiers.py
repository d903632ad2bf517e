"""Compare page classifiers for educational value and knowledge level on source-held-out splits.

Why: the shipped classifiers learned "well-formed prose vs junk" from documentation, spam and menus; a crawl is
mostly news, shops, blogs and forums. This script measures, on pages rated by reading them (data/realweb/
labels.jsonl) plus the quality corpus's source-labelled pages (weak labels), which model tells teaching pages
(rubric score >= 3) from news, shopping, opinion, spam and navigation on SOURCES IT NEVER SAW:
- fastText (regression on the 0-5 scale, and binary >= 3), as the shipped models;
- a frozen sentence encoder (all-MiniLM-L6-v2, the offline package) with a ridge / logistic head, FineWeb-Edu's
  design;
- a cascade: fastText first, the encoder only where fastText's score is in an uncertain band.
Training rows come from the train splits only; scores are out-of-fold over source-held-out folds (a mixed
source's pages fold by their site); the eval splits (other sources) are scored by models fitted on all of train
and are never used to choose anything. Prints ROC-AUC overall and per kind of negative, and the cost per page.

  .venv/bin/python scripts/page_texts.py data/quality/train R/train R/eval data/quality/eval --out T.jsonl
  .venv/bin/python scripts/compare_edu_classifiers.py T.jsonl [--embeddings E.npy]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from urllib.parse import urlsplit

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from assay.classifiers.metrics import roc_auc  # noqa: E402

#: ratings made by reading pages: the real-web corpus's, and the committed quality eval split's
LABELS = (os.path.join(REPO_ROOT, "data", "realweb", "labels.jsonl"),
          os.path.join(REPO_ROOT, "data", "quality", "eval", "ratings.jsonl"))
FOLDS = 5
#: the quality corpus's source categories as weak rubric scores (never read page by page): documentation pages
#: explain (3), changelogs give some information (1), the rest teach nothing (0)
WEAK_SCORE = {"edu": 3, "ephemeral": 1, "nav": 0, "spam": 0, "mailing_list": 0, "chatter": 0,
              "explainer": 3, "forum": 0}
WEAK_DURABLE = {"edu": "durable", "ephemeral": "ephemeral", "explainer": "durable"}
#: mixed sources (pages from many sites): their pages fold by site, so no site is in two folds
MIXED = {"cleaneval-final", "cleaneval-dev", "dragnet", "newspaper-fixtures", "l3s-gn1", "cleanportaleval",
         "goose3-fixtures"}
NEGATIVE_GROUPS = {"news/commerce/opinion": {"ephemeral", "commercial", "opinion"},
                   "spam/navigation": {"spam", "navigation", "nav"}, "forum/other": {"forum", "other", "fiction",
                                                                                       "mailing_list", "chatter"}}


def load(path: str, labels_paths=LABELS) -> list[dict]:
    labels = {}
    for labels_path in labels_paths:
        for line in open(labels_path, encoding="utf-8"):
            row = json.loads(line)
            if not row.get("rerate"):
                labels[row["record_id"]] = row
    rows = []
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        label = labels.get(row["record_id"])
        if label:
            row.update(score=label["edu"], durable=label["durable"], rated_category=label["category"], weak=False,
                       rater=label["rater"])
        elif row["category"] in WEAK_SCORE:
            row.update(score=WEAK_SCORE[row["category"]], durable=WEAK_DURABLE.get(row["category"]),
                       rated_category=row["category"], weak=True)
        else:
            continue
        row["train"] = row["split"] == "train"
        rows.append(row)
    return rows


def fold_of(row: dict) -> int:
    if row["source"] in MIXED:
        host = urlsplit(row["url"]).hostname or ""
        key = row["record_id"] if host.endswith(".invalid") else host.removeprefix("www.")
    else:
        key = row["source"]
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % FOLDS


def fasttext_model(task: str):
    from assay.classifiers.config import FastTextConfig
    from assay.classifiers.fasttext_kind import FastTextClassifier

    cfg = FastTextConfig(epoch=25, lr=0.2, dim=32, word_ngrams=2, min_count=2, bucket=200_000,
                         split_punctuation=True)
    return FastTextClassifier(task, cfg)


def head(task: str):
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(C=1.0, max_iter=3000) if task == "binary" else Ridge(alpha=1.0)


def head_scores(model, x: np.ndarray) -> np.ndarray:
    return model.predict_proba(x)[:, 1] if hasattr(model, "predict_proba") else model.predict(x)


def out_of_fold(train: list[dict], y: np.ndarray, fit_score) -> np.ndarray:
    folds = np.array([fold_of(r) for r in train])
    out = np.zeros(len(train))
    for k in range(FOLDS):
        held = folds == k
        if held.any():
            out[held] = fit_score(~held, held)
    return out


def report(name: str, rows: list[dict], scores: np.ndarray, positive) -> dict:
    y = np.array([1.0 if positive(r) else 0.0 for r in rows])
    out = {"all": round(float(roc_auc(y, scores)), 4)}
    rated = np.array([not r["weak"] for r in rows])
    if rated.any() and 0 < y[rated].sum() < rated.sum():
        out["rated pages"] = round(float(roc_auc(y[rated], scores[rated])), 4)
    for group, cats in NEGATIVE_GROUPS.items():
        mask = np.array([positive(r) or r["rated_category"] in cats for r in rows])
        if mask.any() and 0 < y[mask].sum() < mask.sum():
            out[f"vs {group}"] = round(float(roc_auc(y[mask], scores[mask])), 4)
    print(f"  {name:28s} " + "  ".join(f"{k} {v:.3f}" for k, v in out.items()), file=sys.stderr)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts")
    parser.add_argument("--embeddings", help="cache of the encoder's embeddings of the texts (.npy)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    rows = load(args.texts)
    train = [r for r in rows if r["train"]]
    held = [r for r in rows if not r["train"]]
    print(f"{len(train)} train rows ({sum(not r['weak'] for r in train)} rated), {len(held)} eval rows "
          f"({sum(not r['weak'] for r in held)} rated)", file=sys.stderr)

    from assay.classifiers.encoder_kind import EncoderClassifier

    encoder = EncoderClassifier("regression")
    if args.embeddings and os.path.isfile(args.embeddings):
        emb = np.load(args.embeddings)
    else:
        start = time.perf_counter()
        emb = encoder.embed([r["text"] for r in rows])
        print(f"encoder: {len(rows) / (time.perf_counter() - start):.1f} pages/s", file=sys.stderr)
        if args.embeddings:
            np.save(args.embeddings, emb)
    index = {id(r): i for i, r in enumerate(rows)}
    results = {}
    tasks = {
        "edu": (lambda r: r["score"] >= 3, lambda r: float(r["score"]), train, held),
        "knowledge": (lambda r: r["durable"] == "durable", lambda r: 1.0 if r["durable"] == "durable" else 0.0,
                      [r for r in train if r["durable"]], [r for r in held if r["durable"]]),
    }
    for task, (positive, target, tr, he) in tasks.items():
        print(f"{task}: {len(tr)} train rows, {len(he)} eval rows", file=sys.stderr)
        y_reg = np.array([target(r) for r in tr])
        y_bin = np.array([1.0 if positive(r) else 0.0 for r in tr])
        xt = emb[[index[id(r)] for r in tr]]
        xh = emb[[index[id(r)] for r in he]]
        texts = [r["text"] for r in tr]
        held_texts = [r["text"] for r in he]
        variants = {}
        for name, kind, y in (("fasttext regression", "regression", y_reg), ("fasttext binary", "binary", y_bin)):
            if task == "knowledge" and kind == "regression":
                continue

            def fit_score(fit_mask, score_mask, kind=kind, y=y):
                clf = fasttext_model(kind)
                clf.fit([t for t, m in zip(texts, fit_mask) if m], y[fit_mask])
                return clf.score([t for t, m in zip(texts, score_mask) if m])

            oof = out_of_fold(tr, y, fit_score)
            clf = fasttext_model(kind)
            clf.fit(texts, y)
            start = time.perf_counter()
            held_scores = clf.score(held_texts)
            cost = (time.perf_counter() - start) / max(len(he), 1)
            variants[name] = (oof, held_scores, cost)
        for name, kind, y in (("encoder ridge", "regression", y_reg), ("encoder logistic", "binary", y_bin)):
            if task == "knowledge" and kind == "regression":
                continue
            oof = out_of_fold(tr, y, lambda f, s, kind=kind, y=y: head_scores(head(kind).fit(xt[f], y[f]), xt[s]))
            variants[name] = (oof, head_scores(head(kind).fit(xt, y), xh), None)
        results[task] = {}
        for name, (oof, held_scores, cost) in variants.items():
            print(f" {name}" + (f" ({cost * 1000:.2f} ms/page)" if cost else ""), file=sys.stderr)
            results[task][name] = {"train_source_held_out": report("train, out of fold", tr, oof, positive),
                                   "eval_sources": report("eval sources", he, held_scores, positive)}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
