"""Decontamination finds planted benchmark questions (MMLU and user JSONL) in shards, in a real Beam run."""
import gzip
import json

import duckdb
import pytest

from assay.curation.decontam import (
    MMLU_PATH,
    DecontamConfig,
    DecontamStage,
    NgramIndex,
    load_eval_items,
    load_jsonl_items,
)
from assay.curation.document import Document, Rejection
from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic


@pytest.fixture(scope="module")
def mmlu_rows():
    with gzip.open(MMLU_PATH, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def mmlu_index():
    cfg = DecontamConfig()
    return NgramIndex(load_eval_items(cfg), cfg)


def _long_question(rows, start):
    return next((i, r) for i, r in enumerate(rows[start:], start) if len(r["question"].split()) > 30)


def test_shipped_mmlu_copy_is_complete(mmlu_rows):
    assert len(mmlu_rows) == 14042
    assert not any(r["question"] == "question" for r in mmlu_rows)
    assert len({r["topic"] for r in mmlu_rows}) == 57


def test_planted_question_is_found_and_named(mmlu_rows, mmlu_index):
    line, row = _long_question(mmlu_rows, 5000)
    words = row["question"].split()
    planted = "Our lesson today covers many things. " + " ".join(words[3:20]).upper() + " ... and more prose."
    found = mmlu_index.find(planted)
    assert found is not None
    assert found.item.benchmark == "mmlu"
    assert found.item.item_id == f"{row['topic']}/{line + 1}"
    assert found.hits >= 17 - 13 + 1  # every 13-gram of the 17 planted words (more if punctuation splits words)


def test_short_question_matches_whole_and_clean_text_does_not(mmlu_rows, mmlu_index):
    short = next(r for r in mmlu_rows if 8 <= len(r["question"].split()) < 13)
    assert mmlu_index.find(f"Recall: {short['question']} Think about it.") is not None
    assert mmlu_index.find("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in "
                           "the leaves of green plants every single day of the growing season.") is None


def test_n_is_configurable(tmp_path):
    evalset = tmp_path / "quiz.jsonl"
    evalset.write_text(json.dumps({"id": "q1",
                                   "question": "Which planet in our solar system has the longest day of all "
                                                           "the planets measured in Earth hours"}) + "\n")
    doc = Document("d", "fun fact: which planet in our solar system has the longest day? Venus does.")
    for n, flagged in ((8, True), (13, False)):
        stage = DecontamStage(DecontamConfig(n=n, mmlu=False, eval_jsonl=[str(evalset)]))
        out = stage.process(doc)
        assert isinstance(out, Rejection) is flagged, n
    rej = DecontamStage(DecontamConfig(n=8, mmlu=False, eval_jsonl=[str(evalset)])).process(doc)
    assert rej.reason == "benchmark_overlap" and rej.signals["benchmark"] == "quiz"
    assert rej.signals["benchmark_item"] == "q1" and "8-gram" in rej.detail


def test_bad_eval_files_say_what_to_do(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not JSON"):
        load_jsonl_items(str(bad))
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"q": "x"}\n')
    with pytest.raises(ValueError, match="add one"):
        load_jsonl_items(str(nofield))
    with pytest.raises(FileNotFoundError, match="JSONL"):
        load_jsonl_items(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="n must be >= 3"):
        DecontamConfig(n=2)


def test_beam_decontam_of_web_shards(tmp_path, mmlu_rows):
    """Real Beam run over a shard: planted MMLU and user-JSONL items go to the ledger naming the item."""
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.synth_jobs.decontam import DecontamJobConfig, run_decontam

    line, row = _long_question(mmlu_rows, 9000)
    user = tmp_path / "inhouse.jsonl"
    user.write_text(json.dumps({"task_id": "inhouse/7", "prompt": "Describe how a bloom filter answers membership "
                                "queries with no false negatives but a tunable rate of false positives"}) + "\n")
    docs = [
        Document("clean1", "Sourdough starter is a culture of wild yeast and lactic acid bacteria kept alive by "
                           "regular feeding with flour and water over many days.", source="web", url="https://a.org/1"),
        Document("mmlu1", "Quiz night! " + row["question"] + " Answer below.", source="web", url="https://b.org/2"),
        Document("user1", "Interview prep: describe how a Bloom filter answers membership queries with no false "
                          "negatives but a tunable rate of false positives.", source="web", url="https://c.org/3"),
    ]
    docs = [d.with_meta(quality=0.5) for d in docs]
    schema = doc_schema({"quality": __import__("pyarrow").float64()})
    shards = tmp_path / "web" / "docs"
    write_table_atomic(rows_to_table([d.to_row() for d in docs], schema), str(shards / "part-00000-of-00001.parquet"))

    out = tmp_path / "clean"
    cfg = DecontamConfig(n=13, eval_jsonl=[str(user)])
    counts = run_decontam(DecontamJobConfig(str(tmp_path / "web"), str(out), cfg,
                                            runner=RunnerConfig(workers=1, mode="in_memory")))
    assert counts == {"kept": 1, "rejected": 2}
    kept = duckdb.sql(f"SELECT id, quality FROM '{out}/docs/*.parquet'").fetchall()
    assert kept == [("clean1", 0.5)]  # input columns survive
    ledger = {r[0]: r[1:] for r in duckdb.sql(
        f"SELECT id, stage, reason, detail, signals FROM '{out}/rejected/*.parquet'").fetchall()}
    assert set(ledger) == {"mmlu1", "user1"}
    assert ledger["mmlu1"][:2] == ("decontam", "benchmark_overlap")
    assert json.loads(ledger["mmlu1"][3])["benchmark_item"] == f"{row['topic']}/{line + 1}"
    assert "inhouse/7" in ledger["user1"][2] and json.loads(ledger["user1"][3])["benchmark"] == "inhouse"


def test_generation_quality_control_dedups_and_decontaminates(mmlu_rows):
    """The QC step every generation job runs: curation's exact + MinHash dedup, then decontamination."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from assay.pipelines.job.shard_job import ShardJob
    from assay.pipelines.job.sources import Items
    from assay.pipelines.job.steps import StepContext
    from assay.pipelines.synth_jobs.generate import quality_steps

    _, row = _long_question(mmlu_rows, 12000)
    base = ("Rivers carve valleys over thousands of years as water carries sand and stones downstream, slowly "
            "wearing away the rock of the riverbed and the banks on either side of the flowing water.")
    docs = [Document("g1", base, source="synth:textbook"),
            Document("g2", base.upper() + "!", source="synth:textbook"),  # exact after normalisation
            Document("g3", base.replace("thousands", "millions"), source="synth:textbook"),  # near-duplicate
            Document("g4", "Practice question: " + row["question"], source="synth:textbook"),
            Document("g5", "Clouds form when warm moist air rises, cools and its water vapour condenses on dust.",
                     source="synth:textbook")]
    from apache_beam.testing.util import assert_that, equal_to

    with beam.Pipeline(runner=FnApiRunner()) as p:
        kept, rejected = p | beam.Create(docs), []
        for step in ShardJob("qc", Items([]), quality_steps(True, [], DecontamConfig()), "unused").fused_steps():
            kept, dropped = step.expand(kept, StepContext())
            rejected += dropped
        assert_that(kept | "k" >> beam.Map(lambda d: d.id), equal_to(["g1", "g5"]), label="kept")
        assert_that(tuple(rejected) | beam.Flatten() | "r" >> beam.Map(lambda r: (r.id, r.reason)),
                    equal_to([("g2", "exact_duplicate"), ("g3", "near_duplicate"), ("g4", "benchmark_overlap")]),
                    label="ledger")
