"""Templates, cache keys, request parsing, outline parsing, coverage and CLI errors (no model needed)."""
import json

import pytest
from typer.testing import CliRunner

from assay.curation.document import Document, Rejection
from assay.curation.shards import LEDGER_DIR, doc_schema, ledger_table, rows_to_table, write_table_atomic
from assay.synth.backends.base import Completion, apply_stop, expected_score
from assay.synth.cache import RequestCache, request_key
from assay.synth.config import BackendConfig, Sampling
from assay.synth.items import SYNTH_COLUMNS
from assay.synth.server import RequestError, parse_chat_request
from assay.synth.templates import TEMPLATES, Template, get_template
from assay.synth.textbooks import TextbookConfig, parse_outline, topic_items


def test_template_hash_follows_the_wording():
    t = get_template("textbook.topic.v1")
    assert t.hash == get_template("textbook.topic.v1").hash
    changed = Template(t.id, t.system, t.user + " Be brief.")
    assert changed.hash != t.hash
    assert len({x.hash for x in TEMPLATES.values()}) == len(TEMPLATES)
    with pytest.raises(ValueError, match="needs field 'audience'"):
        t.render(topic="x", style="y")
    with pytest.raises(ValueError, match="unknown template"):
        get_template("nope")


def test_cache_key_covers_everything_that_decides_the_answer(tmp_path):
    msgs = [{"role": "user", "content": "hi"}]
    base = dict(backend="transformers", model="m@1", template_id="t", template_hash="h", sampling=Sampling(),
                seed=1, prompt=msgs)
    key = request_key(**base)
    for change in (dict(backend="openai"), dict(model="m@2"), dict(template_hash="h2"), dict(seed=2),
                   dict(sampling=Sampling(temperature=0.5)), dict(prompt=[{"role": "user", "content": "hi!"}])):
        assert request_key(**{**base, **change}) != key, change
    assert request_key(**{**base, "sampling": Sampling(seed=99)}) == key  # the per-request seed is what counts

    cache = RequestCache(str(tmp_path))
    assert cache.get_completion(key) is None and len(cache) == 0
    comp = Completion("text", 3, 1, "stop", [-0.5], ["t"], None)
    cache.put_completion(key, comp)
    assert cache.get_completion(key) == comp and len(cache) == 1
    (tmp_path / key[:2] / f"{key}.json").write_text("{trunc")  # a torn entry is regenerated, not trusted
    assert cache.get_completion(key) is None


def test_items_are_stable_and_cover_the_grid():
    cfg = TextbookConfig(audiences=["kids", "adults"], styles=["story"], seed=5)
    items = topic_items(["a", "b"], cfg)
    assert [i.id for i in items] == [i.id for i in topic_items(["a", "b"], cfg)]
    assert {(i.labels["topic"], i.labels["audience"]) for i in items} == {(t, a) for t in "ab" for a in ("kids",
                                                                                                         "adults")}
    assert len({i.seed for i in items}) == 4
    assert topic_items(["a"], TextbookConfig(audiences=["kids"], styles=["story"], seed=6))[0].seed != items[0].seed


def test_outline_parsing():
    text = "1. What is a volcano?\n- Types of volcanoes\n\n**Eruptions**\n2) What is a volcano?\n#  Safety"
    assert parse_outline(text, 10) == ["What is a volcano?", "Types of volcanoes", "Eruptions", "Safety"]
    assert parse_outline(text, 2) == ["What is a volcano?", "Types of volcanoes"]
    assert parse_outline("   \n", 3) == []


def test_sampling_and_backend_config_validation():
    with pytest.raises(ValueError, match="max_new_tokens"):
        Sampling(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(ValueError, match="backend.kind"):
        BackendConfig(kind="llamacpp")
    assert apply_stop("abc STOP def", ("STOP",)) == ("abc ", True)
    assert expected_score({"0": 0.0, "5": 0.0}) is None
    assert expected_score({"1": 0.2, "3": 0.2}) == pytest.approx(2.0)


def test_chat_request_parsing():
    msgs, s = parse_chat_request({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9999,
                                  "temperature": 0, "stop": "END", "seed": 3, "top_logprobs": 50}, 256, 100)
    assert msgs == [{"role": "user", "content": "x"}]
    assert (s.max_new_tokens, s.temperature, s.stop, s.seed, s.top_logprobs) == (100, 0.0, ("END",), 3, 20)
    for body, msg in (({}, "messages"), ({"messages": [{"role": "user", "content": 1}]}, "string content"),
                      ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n=1"),
                      ({"messages": [{"role": "user", "content": "x"}], "top_p": 2}, "top_p")):
        with pytest.raises(RequestError, match=msg):
            parse_chat_request(body, 256, 100)


def test_coverage_report(tmp_path):
    from assay.synth.coverage import write_coverage

    rows = [Document(f"d{i}", "x" * (10 * (i + 1)), source="synth:textbook",
                     meta={"generator": "textbook", "topic": t, "audience": "kids", "style": "story",
                           "tokens_out": 5, "finish_reason": "length" if i == 0 else "stop"}).to_row()
            for i, t in enumerate(["a", "a", "b"])]
    write_table_atomic(rows_to_table(rows, doc_schema(SYNTH_COLUMNS)),
                       str(tmp_path / "docs" / "part-00000-of-00001.parquet"))
    rej = [Rejection("synth:exercise", "tests_failed", id="r1").to_row(),
           Rejection("decontam", "benchmark_overlap", id="r2").to_row(),
           Rejection("synth:exercise", "tests_failed", id="r3").to_row()]
    write_table_atomic(ledger_table(rej), str(tmp_path / LEDGER_DIR / "part-00000-of-00001.parquet"))
    report = write_coverage(str(tmp_path))
    assert report["totals"] == {"documents": 3, "rejected": 3, "cells": 2}
    cells = {c["topic"]: (c["documents"], c["chars"]) for c in report["cells"]}
    assert cells == {"a": (2, 30), "b": (1, 30)}
    (lengths,) = report["lengths"]
    assert (lengths["min_chars"], lengths["max_chars"], lengths["truncated"], lengths["tokens_out"]) == (10, 30, 1, 15)
    assert report["rejections"][0] == {"stage": "synth:exercise", "reason": "tests_failed", "records": 2}
    assert json.load(open(tmp_path / "stats" / "coverage.json"))["totals"]["rejected"] == 3


def test_cli_errors_say_what_to_do(tmp_path):
    from assay.pipelines.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["synth", "textbooks", "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none")])
    assert res.exit_code == 2 and "nothing to generate" in res.output
    topics = tmp_path / "topics.txt"
    topics.write_text("# comment only\n\n")
    res = runner.invoke(app, ["synth", "textbooks", "--out", str(tmp_path / "o"), "--topics", str(topics)])
    assert res.exit_code == 2 and "has no topics" in res.output
    topics.write_text("volcanoes\n")
    res = runner.invoke(app, ["synth", "textbooks", "--out", str(tmp_path / "o"), "--topics", str(topics),
                              "--model", str(tmp_path / "none")])
    assert res.exit_code == 2 and "local paths only" in res.output
    res = runner.invoke(app, ["synth", "exercises", "--out", str(tmp_path / "o"), "--kinds", "poetry"])
    assert res.exit_code == 2 and "unknown exercise kind" in res.output
    res = runner.invoke(app, ["synth", "--help"])
    assert res.exit_code == 0 and "serve" in res.output and "Example" in res.output


def test_cli_decontam_and_coverage(tmp_path):
    from assay.pipelines.cli import app

    evalset = tmp_path / "evals.jsonl"
    evalset.write_text(json.dumps({"id": "e1", "question": "Name the process by which green plants turn light "
                                                           "water and carbon dioxide into sugar and oxygen"}) + "\n")
    docs = [Document("a", "Quiz: name the process by which green plants turn light, water and carbon dioxide "
                          "into sugar and oxygen!", source="web"),
            Document("b", "Tides rise and fall twice a day because of the moon's gravity.", source="web")]
    write_table_atomic(rows_to_table([d.to_row() for d in docs], doc_schema({})),
                       str(tmp_path / "in" / "docs" / "part-00000-of-00001.parquet"))
    res = CliRunner().invoke(app, ["synth", "decontam", "--shards", str(tmp_path / "in"), "--out",
                                   str(tmp_path / "out"), "--no-mmlu", "--eval-jsonl", str(evalset), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "kept 1, rejected 1" in res.output
    res = CliRunner().invoke(app, ["synth", "coverage", "--output", str(tmp_path / "out")])
    assert res.exit_code == 0 and "| decontam | benchmark_overlap | 1 |" in res.output
