"""Model directories: content hash, clear errors for corrupt or mismatched directories, rubric labels with
binned regression, and the `assay classify` commands end to end (on the seed set's one-line rationales:
real hand-written text, small enough to train in a second)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from assay.classifiers.artifact import METADATA_FILE, ModelDirError, load_model, read_metadata
from assay.classifiers.config import ClassifierTrainConfig, EncoderConfig, SplitConfig
from assay.classifiers.encoder_kind import resolve_encoder_dir
from assay.classifiers.labels import LabelSpec, build_labels, read_labels
from assay.classifiers.train import train
from assay.curation.document import Document
from assay.curation.shards import doc_schema, read_documents, rows_to_table, write_table_atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "data", "labels", "knowledge_seed.jsonl")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    """One document per seed row: the rationale as text, its label, and a rubric score from an annotator."""
    import pyarrow as pa

    with open(SEED, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    docs = []
    for i, r in enumerate(rows):
        durable = r["label"] == "durable"
        score = float(3 + i % 3) if durable else float(i % 3)  # durable 3..5, ephemeral 0..2
        docs.append(Document(f"seed-{i:03d}", r["rationale"], "seed", r["url"],
                             meta={"kind_label": r["label"], "edu_score": score, "edu_score_annotator": "hand"}))
    out = str(tmp_path_factory.mktemp("rationale-shards"))
    schema = doc_schema({"kind_label": pa.string(), "edu_score": pa.float64(), "edu_score_annotator": pa.string()})
    write_table_atomic(rows_to_table([d.to_row() for d in docs], schema), f"{out}/docs/part-00000-of-00001.parquet")
    return out


@pytest.fixture(scope="module")
def labels(shards, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("labels"))
    build_labels(shards, LabelSpec(kind="reference", positive_where="kind_label = 'durable'"), out,
                 SplitConfig(train=0.6, valid=0.2))
    return out


@pytest.fixture()
def model_dir(labels, tmp_path) -> str:
    path = str(tmp_path / "model")
    train(labels, ClassifierTrainConfig(kind="fasttext"), path)
    return path


def test_metadata_records_provenance_and_hash(model_dir, labels):
    meta = read_metadata(model_dir)
    assert meta["kind"] == "fasttext" and meta["task"] == "binary"
    assert meta["label_source"]["kind"] == "reference" and meta["label_source"]["dataset"] == labels
    assert len(meta["content_hash"]) == 64 and len(meta["training_data_hash"]) == 64
    assert {"python", "numpy", "fasttext-numpy2-wheel"} <= set(meta["library_versions"])
    assert meta["created_at"] and meta["threshold"] is None


def test_tampered_model_file_is_refused(model_dir):
    with open(os.path.join(model_dir, "model.bin"), "r+b") as fh:
        fh.seek(-64, os.SEEK_END)
        fh.write(b"\x00" * 64)
    with pytest.raises(ModelDirError, match="content_hash.*retrain"):
        load_model(model_dir)


@pytest.mark.parametrize("damage, message", [
    ("no_metadata", "no metadata.json"),
    ("bad_json", "unreadable"),
    ("missing_file", "missing"),
    ("other_kind", "belongs to another model"),
    ("no_dir", "does not exist"),
])
def test_broken_model_directory_says_what_to_do(model_dir, damage, message):
    meta_path = os.path.join(model_dir, METADATA_FILE)
    if damage == "no_metadata":
        os.remove(meta_path)
    elif damage == "bad_json":
        with open(meta_path, "w") as fh:
            fh.write("{ not json")
    elif damage == "missing_file":
        os.remove(os.path.join(model_dir, "model.bin"))
    elif damage == "other_kind":
        meta = json.load(open(meta_path))
        meta["kind"] = "encoder"
        json.dump(meta, open(meta_path, "w"))
    else:
        shutil.rmtree(model_dir)
    with pytest.raises(ModelDirError, match=message):
        load_model(model_dir)


def test_encoder_head_refuses_a_different_encoder(labels, tmp_path):
    path = str(tmp_path / "enc")
    clf, _ = train(labels, ClassifierTrainConfig(kind="encoder", encoder=EncoderConfig(max_tokens=32)), path)
    original = resolve_encoder_dir(None)
    fake = tmp_path / "other-encoder"
    fake.mkdir()
    for name in os.listdir(original):  # the same weights, a changed tokenizer config: another encoder
        src = os.path.join(original, name)
        if os.path.isfile(src):
            os.symlink(src, fake / name)
    os.remove(fake / "tokenizer_config.json")
    cfg = json.load(open(os.path.join(original, "tokenizer_config.json")))
    cfg["model_max_length"] = 64
    json.dump(cfg, open(fake / "tokenizer_config.json", "w"))
    texts = [r["text"] for r in read_labels(labels, "test")[0]]
    assert np.array_equal(load_model(path)[0].score(texts), clf.score(texts))
    meta = json.load(open(os.path.join(path, METADATA_FILE)))
    meta["settings"]["encoder"]["encoder_dir"] = str(fake)
    json.dump(meta, open(os.path.join(path, METADATA_FILE), "w"))
    with pytest.raises(ModelDirError, match="differs from the one this head was trained on"):
        load_model(path)


@pytest.mark.parametrize("kind", ["fasttext", "encoder"])
def test_rubric_labels_train_regression(kind, shards, tmp_path):
    out = str(tmp_path / "rubric")
    summary = build_labels(shards, LabelSpec(kind="rubric", score_column="edu_score"), out)
    assert summary["annotators"] == ["hand"]
    path = str(tmp_path / "reg")
    clf, meta = train(out, ClassifierTrainConfig(kind=kind, task="regression", encoder=EncoderConfig(max_tokens=32)),
                      path)
    assert meta["label_source"]["annotators"] == ["hand"] and meta["task"] == "regression"
    rows = read_labels(out, "train")[0]
    scores = clf.score([r["text"] for r in rows])
    assert scores.min() >= 0 and scores.max() <= 5
    from scipy.stats import spearmanr

    assert spearmanr([r["label"] for r in rows], scores).statistic > 0.5  # learned the training ranking
    reference = str(tmp_path / "ref")
    build_labels(shards, LabelSpec(kind="reference", positive_where="kind_label = 'durable'"), reference)
    with pytest.raises(ValueError, match="regression needs rubric scores"):
        train(reference, ClassifierTrainConfig(kind="fasttext", task="regression"), str(tmp_path / "reg2"))


def test_label_errors_name_the_fix(shards, tmp_path):
    with pytest.raises(ValueError, match="score column 'nope' is not in the shards"):
        build_labels(shards, LabelSpec(kind="rubric", score_column="nope"), str(tmp_path / "x"))
    with pytest.raises(ValueError, match="check the --positive"):
        build_labels(shards, LabelSpec(kind="reference", positive_where="no_such_column = 1"), str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="assay run"):
        build_labels(str(tmp_path / "empty"), LabelSpec(kind="rubric"), str(tmp_path / "x"))


def test_cli_labels_train_eval_score(shards, tmp_path):
    from assay.pipelines.cli import app

    runner = CliRunner()
    lab, model, out = str(tmp_path / "lab"), str(tmp_path / "m"), str(tmp_path / "scored")
    res = runner.invoke(app, ["classify", "labels", "--shards", shards, "--out", lab,
                              "--positive", "kind_label = 'durable'", "--train", "0.6", "--valid", "0.2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["classify", "score", "--model", str(tmp_path / "nothing"), "--shards", shards,
                              "--out", out, "--column", "k"])
    assert res.exit_code == 2 and "classify train" in res.output
    assert runner.invoke(app, ["classify", "train", "--labels", lab, "--out", model]).exit_code == 0
    res = runner.invoke(app, ["classify", "score", "--model", model, "--shards", shards, "--out", out, "--column", "k"])
    assert res.exit_code == 2 and "assay classify eval" in res.output  # no threshold yet: says how to get one
    res = runner.invoke(app, ["classify", "eval", "--model", model, "--labels", lab, "--policy", "best_f1",
                              "--report", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert "ROC-AUC" in res.output and os.path.isfile(tmp_path / "report" / "pr_curve.png")
    threshold = read_metadata(model)["threshold"]
    res = runner.invoke(app, ["classify", "score", "--model", model, "--shards", shards, "--out", out,
                              "--column", "k", "--mode", "annotate", "--workers", "1"])
    assert res.exit_code == 0, res.output
    scored = list(read_documents(out))
    assert len(scored) == len(list(read_documents(shards))) and all(0 <= d.meta["k"] <= 1 for d in scored)
    assert threshold is not None


def test_unreadable_shard_goes_to_the_ledger_not_a_crash(model_dir, shards, tmp_path):
    import pyarrow.parquet as pq

    from assay.classifiers.scoring import ClassifierStageConfig
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.score_shards import ScoreJobConfig, run_scoring

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(os.path.join(shards, "docs", "part-00000-of-00001.parquet"), src / "part-00000-of-00002.parquet")
    (src / "part-00001-of-00002.parquet").write_bytes(b"PAR1 this is not a parquet file")
    cfg = ClassifierStageConfig(model_dir, "k", mode="annotate")
    counts = run_scoring(ScoreJobConfig(str(src), str(tmp_path / "out"), cfg,
                                        runner=RunnerConfig(workers=1, mode="in_memory")))
    ledger = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert [(r["stage"], r["reason"]) for r in ledger] == [("read", "unreadable_shard")]
    assert ledger[0]["source"].endswith("part-00001-of-00002.parquet")
    assert counts["kept"] == len(list(read_documents(shards)))


def test_train_config_names_a_wrong_kind_or_task_and_the_choices():
    from assay.groundwork.config import FieldError

    with pytest.raises(FieldError, match=r"^kind: must be one of \['fasttext', 'encoder'\], got 'xgboost'$"):
        ClassifierTrainConfig(kind="xgboost")
    with pytest.raises(FieldError, match=r"^task: must be one of \['binary', 'regression'\], got 'ranking'$"):
        ClassifierTrainConfig(task="ranking")


def test_every_classifier_kind_has_its_class():
    """ClassifierKind (the config's choices) and the kinds registry name the same kinds."""
    from typing import get_args

    from assay.classifiers.config import ClassifierKind
    from assay.classifiers.kinds import _KINDS, kind_class

    assert set(_KINDS) == set(get_args(ClassifierKind))
    assert kind_class("fasttext").__name__ == "FastTextClassifier"


def test_classifier_kind_from_a_config_file_is_checked(tmp_path):
    from assay.groundwork.config import ConfigError, load_config

    path = tmp_path / "train.toml"
    path.write_text('kind = "xgboost"\n', encoding="utf-8")
    wanted = r"train\.toml: kind: expected one of \['fasttext', 'encoder'\], got 'xgboost'"
    with pytest.raises(ConfigError, match=wanted):
        load_config(ClassifierTrainConfig, str(path))
