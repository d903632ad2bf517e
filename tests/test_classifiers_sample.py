"""Both classifier kinds on the sample corpus: labels, held-out quality, Beam scoring, round trips, and the
knowledge-level seed set.

Page text comes from the sample WARCs through trafilatura (the extractor `assay run` uses); the run's own
filters would drop the spam and index pages these labels need as negatives.
"""
from __future__ import annotations

import glob
import json
import os
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from assay.classifiers.artifact import load_model, read_metadata, save_model
from assay.classifiers.config import ClassifierTrainConfig, EncoderConfig, FastTextConfig, SplitConfig
from assay.classifiers.evaluate import evaluate
from assay.classifiers.knowledge import DURABLE, EPHEMERAL, SEED_FILE
from assay.classifiers.labels import LabelSpec, build_labels, read_labels
from assay.classifiers.train import train
from assay.curation.document import Document, content_hash, stable_id
from assay.curation.shards import doc_schema, read_documents, rows_to_table, write_table_atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "sample")
MANIFEST = os.path.join(SAMPLE, "manifest.jsonl")
SEED = os.path.join(REPO, SEED_FILE)
CATEGORIES = {"doc", "spam", "index", "ephemeral"}
ENCODER = EncoderConfig(max_tokens=128, batch_size=16)
KINDS = ("fasttext", "encoder")


def _train_cfg(kind: str) -> ClassifierTrainConfig:
    return ClassifierTrainConfig(kind=kind, fasttext=FastTextConfig(), encoder=ENCODER)


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    with open(MANIFEST, encoding="utf-8") as fh:
        return {row["url"]: row for row in map(json.loads, fh)}


def _wanted(url: str, manifest: dict[str, dict], seed_urls: set[str]) -> bool:
    """Every negative, ephemeral and seed page, near-duplicate pairs, and a fixed half of the other doc pages
    (extraction is the slow part of this module)."""
    row = manifest.get(url)
    if row is None or row["category"] not in CATEGORIES:
        return False
    if row["category"] != "doc" or url in seed_urls or row["near_duplicate_of"]:
        return True
    return int(content_hash(url)[:4], 16) % 2 == 0


@pytest.fixture(scope="module")
def shards(tmp_path_factory, manifest) -> str:
    """Sample pages of the categories these tests use, extracted to one document shard."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    with open(SEED, encoding="utf-8") as fh:
        seed_urls = {json.loads(line)["url"] for line in fh}
    seed_urls |= {m["near_duplicate_of"] for m in manifest.values() if m["near_duplicate_of"]}

    docs = []
    for path in sorted(glob.glob(os.path.join(SAMPLE, "*.warc.gz"))):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                url = record.rec_headers.get_header("WARC-Target-URI")
                if record.rec_type != "response" or not _wanted(url, manifest, seed_urls):
                    continue
                html = record.content_stream().read().decode("utf-8", "replace")
                text = trafilatura.extract(html, deduplicate=False) or ""
                docs.append(Document(stable_id(url), text, manifest[url]["source_package"], url))
    out = str(tmp_path_factory.mktemp("sample-shards"))
    write_table_atomic(rows_to_table([d.to_row() for d in docs], doc_schema({})), f"{out}/part-00000-of-00001.parquet")
    return out


@pytest.fixture(scope="module")
def ref_labels(shards, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("ref-labels"))
    spec = LabelSpec(kind="reference", positive_where="category = 'doc'",
                     negative_where="category IN ('spam', 'index')", annotations=MANIFEST,
                     group_by="coalesce(near_duplicate_of, url)")
    build_labels(shards, spec, out, SplitConfig(train=0.6, valid=0.2))
    return out


@pytest.fixture(scope="module")
def ref_models(ref_labels, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("ref-models")
    return {kind: (str(base / kind), *train(ref_labels, _train_cfg(kind), str(base / kind))) for kind in KINDS}


def test_labels_keep_copies_and_near_duplicates_in_one_split(ref_labels, shards, manifest):
    rows, summary = read_labels(ref_labels)
    splits_of_hash, split_of_url = defaultdict(set), {}
    for r in rows:
        splits_of_hash[content_hash(r["text"])].add(r["split"])
        split_of_url[r["url"]] = r["split"]
    assert all(len(s) == 1 for s in splits_of_hash.values())
    pairs = [(u, m["near_duplicate_of"]) for u, m in manifest.items()
             if m["near_duplicate_of"] and u in split_of_url and m["near_duplicate_of"] in split_of_url]
    assert pairs, "the sample's near-duplicate pairs should be labelled"
    assert all(split_of_url[a] == split_of_url[b] for a, b in pairs)
    # every doc/spam/index page with text got the label its category says, nothing else got one
    docs = {d.url: d for d in read_documents(shards)}
    expected = {u: float(m["category"] == "doc") for u, m in manifest.items()
                if m["category"] in ("doc", "spam", "index") and u in docs and docs[u].text.strip()}
    assert {r["url"]: r["label"] for r in rows} == expected
    assert {s for s in summary["counts"] if summary["counts"][s]} == {"train", "valid", "test"}


@pytest.mark.parametrize("kind", KINDS)
def test_kind_reaches_held_out_auc_and_records_threshold(kind, ref_models, ref_labels, tmp_path):
    model_dir, clf, _ = ref_models[kind]
    report = evaluate(model_dir, ref_labels, report_dir=str(tmp_path))
    metrics = report["metrics"]
    assert metrics["roc_auc"] >= 0.9, f"{kind}: held-out ROC-AUC {metrics['roc_auc']:.3f}"
    assert metrics["n"] == len(read_labels(ref_labels, "test")[0])
    meta = read_metadata(model_dir)
    assert meta["threshold"] == report["threshold_choice"]["threshold"]
    assert meta["metrics"]["roc_auc"] == metrics["roc_auc"]
    assert len(metrics["by_source"]) > 1 and sum(g["n"] for g in metrics["by_domain"].values()) == metrics["n"]
    for png in report["plots"]:
        with open(png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert json.load(open(tmp_path / "metrics.json"))["metrics"]["roc_auc"] == metrics["roc_auc"]


@pytest.mark.parametrize("kind", KINDS)
def test_beam_scoring_equals_direct_scoring(kind, ref_models, ref_labels, tmp_path):
    from assay.classifiers.scoring import ClassifierStageConfig
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.score_shards import ScoreJobConfig, run_scoring

    model_dir, clf, _ = ref_models[kind]
    rows = read_labels(ref_labels, "test")[0][:40]
    docs = [Document(r["id"], r["text"], r["source"], r["url"]) for r in rows]
    src = tmp_path / "in"
    write_table_atomic(rows_to_table([d.to_row() for d in docs], doc_schema({})), f"{src}/part-00000-of-00001.parquet")
    direct = dict(zip([d.id for d in docs], clf.score([d.text for d in docs])))
    threshold = float(np.median(list(direct.values())))
    cfg = ClassifierStageConfig(model_dir, "ref_cls", threshold=threshold, mode="drop", max_batch_size=7)
    counts = run_scoring(ScoreJobConfig(str(src), str(tmp_path / "out"), cfg,
                                        runner=RunnerConfig(workers=1, mode="in_memory")))

    kept = {d.id: d.meta["ref_cls"] for d in read_documents(str(tmp_path / "out"))}
    ledger = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    dropped = {r["id"]: json.loads(r["signals"]) for r in ledger}
    assert counts == {"kept": len(kept), "rejected": len(dropped)} and len(kept) + len(dropped) == len(docs)
    assert all(r["stage"] == "classify:ref_cls" and r["reason"] == "below_threshold" for r in ledger)
    scored = {**kept, **{i: s["ref_cls"] for i, s in dropped.items()}}
    tol = 0.0 if kind == "fasttext" else 1e-6  # encoder batches pad differently; masked tokens, float noise only
    assert all(abs(scored[i] - direct[i]) <= tol for i in direct)
    assert all(direct[i] >= threshold for i in kept) and all(direct[i] < threshold for i in dropped)
    assert all(s["threshold"] == threshold for s in dropped.values())


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_gives_identical_scores(kind, ref_models, ref_labels, tmp_path):
    model_dir, clf, meta = ref_models[kind]
    texts = [r["text"] for r in read_labels(ref_labels, "valid")[0][:24]]
    loaded, loaded_meta = load_model(model_dir)
    assert np.array_equal(loaded.score(texts), clf.score(texts))
    again = save_model(loaded, str(tmp_path / "copy"), meta["label_source"], meta["training_data_hash"])
    assert again["content_hash"] == meta["content_hash"]
    assert np.array_equal(load_model(str(tmp_path / "copy"))[0].score(texts), clf.score(texts))


def test_knowledge_seed_is_hand_labelled_from_the_sample(manifest):
    with open(SEED, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert 60 <= len(rows) <= 120
    assert len({r["url"] for r in rows}) == len(rows)
    assert all(r["url"] in manifest and r["label"] in (DURABLE, EPHEMERAL) and r["rationale"].strip()
               for r in rows)
    assert {r["label"] for r in rows} == {DURABLE, EPHEMERAL}


@pytest.mark.parametrize("kind", KINDS)
def test_knowledge_level_classifier_trains_on_the_seed_set(kind, shards, tmp_path):
    labels = str(tmp_path / "labels")
    spec = LabelSpec(kind="reference", positive_where=f"label = '{DURABLE}'",
                     negative_where=f"label = '{EPHEMERAL}'", annotations=SEED)
    summary = build_labels(shards, spec, labels, SplitConfig(train=0.6, valid=0.2))
    assert summary["labelled"] >= 60
    model_dir = str(tmp_path / "model")
    train(labels, _train_cfg(kind), model_dir)
    report = evaluate(model_dir, labels)
    assert report["metrics"]["roc_auc"] >= 0.8, f"{kind}: knowledge ROC-AUC {report['metrics']['roc_auc']}"
    assert read_metadata(model_dir)["label_source"]["spec"]["annotations"] == SEED
