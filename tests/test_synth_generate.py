"""Generation end to end with the real tiny model (SmolLM2-135M-Instruct GGUF) in real Beam pipelines:
provenance, request cache and resume, token accounting, exercises, rephrasing, outlines, dedup against the
web, rubric annotation and the coverage report."""
import json

import duckdb
import pytest

from assay.curation.document import Document, content_hash
from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.synth.backends import expected_score, shared_backend
from assay.synth.cache import RequestCache
from assay.synth.config import Sampling
from assay.synth.tiny import tiny_model_config

SAMPLING = Sampling(max_new_tokens=10)
TOPICS = ["photosynthesis", "fractions"]


@pytest.fixture(scope="module")
def backend():
    return shared_backend(tiny_model_config(batch_size=4))  # loaded once per test session


def _job(out, **kw):
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.synth_jobs.generate import GenerateJobConfig

    kw.setdefault("sampling", SAMPLING)
    return GenerateJobConfig(output=str(out), backend=tiny_model_config(batch_size=4),
                             runner=RunnerConfig(workers=1, mode="in_memory"), **kw)


def _tb_cfg(**kw):
    from assay.synth.textbooks import TextbookConfig

    return TextbookConfig(audiences=["children"], styles=["story", "lecture notes"], min_chars=5, **kw)


def _docs(out, cols="*"):
    return duckdb.sql(f"SELECT {cols} FROM '{out}/docs/*.parquet' ORDER BY id").to_arrow_table().to_pylist()


def _ledger(out):
    return duckdb.sql(f"SELECT * FROM '{out}/rejected/*.parquet' ORDER BY id").to_arrow_table().to_pylist()


def test_batched_backend_matches_single_prompt_generation(backend):
    msgs = [[{"role": "user", "content": "Name a primary colour."}],
            [{"role": "user", "content": "Write one sentence about the moon for a child."}]]
    sampled = Sampling(max_new_tokens=8, temperature=0.9, top_p=0.9, logprobs=True)
    together = backend.generate(msgs, sampled, seeds=[11, 12])
    alone = backend.generate(msgs[1:], sampled, seeds=[12])
    assert together[1].text == alone[0].text  # a prompt's sample does not depend on its batch
    assert all(c.tokens_out == len(c.token_logprobs) > 0 and all(lp <= 0 for lp in c.token_logprobs) for c in together)
    assert any(backend.generate(msgs[1:], sampled, seeds=[s])[0].text != alone[0].text for s in (13, 14))


def test_textbooks_pipeline_with_provenance_cache_and_resume(tmp_path, backend):
    from assay.pipelines.synth_jobs.generate import run_textbooks
    from assay.synth.runner import answer_items
    from assay.synth.textbooks import topic_items

    cfg = _tb_cfg()
    items = topic_items(TOPICS, cfg)
    assert len(items) == 4
    # an interrupted run: the first batch finished (and was cached) before the kill
    cache_dir = tmp_path / "cache"
    answer_items(backend, items[:2], SAMPLING, RequestCache(str(cache_dir)))
    assert len(RequestCache(str(cache_dir))) == 2

    before = backend.usage.requests
    result = run_textbooks(_job(tmp_path / "resumed", cache_dir=str(cache_dir)), cfg, topics=TOPICS)
    assert backend.usage.requests - before == 2  # only what was missing
    usage = result["usage"]["transformers"]
    assert usage["cache_hits"] == 2 and usage["requests"] == 2 and usage["tokens_out"] > 0 and usage["seconds"] > 0

    fresh = run_textbooks(_job(tmp_path / "fresh"), cfg, topics=TOPICS)  # uninterrupted, own cache
    resumed_docs, fresh_docs = _docs(tmp_path / "resumed"), _docs(tmp_path / "fresh")
    assert [(d["id"], d["text"]) for d in resumed_docs] == [(d["id"], d["text"]) for d in fresh_docs]
    assert fresh["kept"] + fresh["rejected"] == 4
    assert fresh["usage"]["transformers"]["tokens_out"] == sum(d["tokens_out"] for d in fresh_docs) + sum(
        json.loads(r["signals"]).get("tokens_out", 0) for r in _ledger(tmp_path / "fresh"))

    doc = fresh_docs[0]
    assert doc["source"] == "synth:textbook" and doc["generator"] == "textbook"
    assert doc["template_id"] == "textbook.topic.v1" and len(doc["template_hash"]) == 16
    assert doc["model"] == backend.model_id and doc["backend"] == "transformers"
    assert json.loads(doc["sampling"])["max_new_tokens"] == 10 and isinstance(doc["seed"], int)
    assert {(d["topic"], d["audience"], d["style"]) for d in fresh_docs} <= {
        (t, "children", s) for t in TOPICS for s in ("story", "lecture notes")}
    assert doc["content_hash"] == content_hash(doc["text"])  # curation's dedup ran

    # a rerun over a complete cache generates nothing and rewrites the same shards
    before = backend.usage.requests
    again = run_textbooks(_job(tmp_path / "fresh"), cfg, topics=TOPICS)
    assert backend.usage.requests == before and again["usage"]["transformers"]["cache_hits"] == 4
    assert _docs(tmp_path / "fresh") == fresh_docs

    cov = json.load(open(tmp_path / "fresh" / "stats" / "coverage.json"))
    assert cov["totals"]["documents"] == len(fresh_docs)
    assert sum(c["documents"] for c in cov["cells"] if c["topic"] == "fractions") == sum(
        d["topic"] == "fractions" for d in fresh_docs)
    assert "| textbook | fractions | children |" in open(tmp_path / "fresh" / "stats" / "coverage.md").read()

    # the output loads with Hugging Face datasets and its card names the model file by hash
    import datasets

    from assay.pipelines.job.card import path_sha256, read_front_matter

    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "fresh" / "docs" / "*.parquet"), split="train")
    assert sorted(loaded["id"]) == [d["id"] for d in fresh_docs]
    card = read_front_matter((tmp_path / "fresh" / "README.md").read_text())
    assert card["assay"]["job"] == "synth-textbook" and card["assay"]["sizes"]["documents"] == len(fresh_docs)
    model = card["assay"]["models"]["backend.model"]
    assert model["sha256"] == path_sha256(model["path"])


def test_generated_text_duplicating_the_web_is_dropped(tmp_path, backend):
    """Dedup against web shards reuses curation's exact/MinHash code; the web page always wins."""
    from assay.pipelines.synth_jobs.generate import run_textbooks

    cache = str(tmp_path / "cache")
    first = run_textbooks(_job(tmp_path / "a", cache_dir=cache), _tb_cfg(), topics=TOPICS[:1])
    generated = _docs(tmp_path / "a")
    assert first["kept"] == len(generated) >= 1
    web = [Document("zz-web-page", generated[0]["text"], source="web", url="https://example.org/p"),
           Document("aa-other", "An unrelated page about sailing boats and the wind on a lake.", source="web")]
    write_table_atomic(rows_to_table([d.to_row() for d in web], doc_schema({})),
                       str(tmp_path / "web" / "docs" / "part-00000-of-00001.parquet"))
    again = run_textbooks(_job(tmp_path / "b", cache_dir=cache, dedup_against=str(tmp_path / "web")), _tb_cfg(),
                          topics=TOPICS[:1])
    ids = {d["id"] for d in _docs(tmp_path / "b", "id")}
    assert generated[0]["id"] not in ids and not any(i.startswith("!web:") for i in ids)
    assert again["usage"]["transformers"]["requests"] == 0  # all from the cache
    dup = [r for r in _ledger(tmp_path / "b") if r["id"] == generated[0]["id"]]
    assert dup and dup[0]["reason"] == "exact_duplicate" and "zz-web-page" in dup[0]["detail"]


def test_exercises_keep_only_verified_items(tmp_path, backend):
    from assay.pipelines.synth_jobs.generate import run_exercises
    from assay.synth.config import SandboxLimits
    from assay.synth.exercises import ExerciseConfig

    limits = SandboxLimits(cpu_seconds=2, wall_seconds=5)
    cfg = ExerciseConfig(kinds=["arithmetic", "algebra", "code"], per_kind=1, verify="program", limits=limits)
    result = run_exercises(_job(tmp_path / "ex", sampling=Sampling(max_new_tokens=16)), cfg)
    docs, ledger = _docs(tmp_path / "ex"), _ledger(tmp_path / "ex")
    assert result["kept"] + result["rejected"] == 3 == len(docs) + len(ledger)
    for d in docs:
        assert d["generator"] == "exercise" and d["parent_id"]
        if d["exercise_kind"] != "code":  # the answer line is the sandbox's, verified
            assert d["text"].endswith(f"Answer: {d['answer']}\n")
    for r in ledger:
        assert r["stage"] == "synth:exercise" and r["reason"] in (
            "tests_failed", "sandbox_error", "sandbox_blocked", "sandbox_timeout", "sandbox_cpu_limit", "bad_output",
            "empty_explanation"), (r["reason"], r["detail"])
        assert r["detail"], r

    strict = ExerciseConfig(kinds=["arithmetic"], per_kind=2, verify="agree", limits=limits)
    run_exercises(_job(tmp_path / "agree", sampling=Sampling(max_new_tokens=16)), strict)
    from assay.synth.exercises import final_answer

    for d in _docs(tmp_path / "agree"):  # kept only when the model's own answer matched the sandbox
        assert d["verification"] == "agree"
    for r in _ledger(tmp_path / "agree"):
        assert r["reason"] in ("answer_mismatch", "no_answer_line")
        said = final_answer(r["text"] or "")
        assert said is None or str(said) != json.loads(r["signals"])["answer"]


def test_rephrase_and_outline_modes(tmp_path, backend):
    from assay.pipelines.synth_jobs.generate import run_rephrase, run_textbooks
    from assay.synth.rephrase import RephraseConfig

    page = Document("page-1", "Bees collect nectar from flowers and turn it into honey inside the hive. "
                              "Worker bees fan their wings to evaporate water from the nectar.",
                    source="web", url="https://bees.example/honey")
    cache = str(tmp_path / "cache")
    rcfg = RephraseConfig(modes=["qa", "distill"], min_chars=1)
    res = run_rephrase(_job(tmp_path / "re", cache_dir=cache), rcfg, [page])
    docs = _docs(tmp_path / "re")
    assert res["kept"] + res["rejected"] == 2
    assert all(d["parent_id"] == "page-1" and d["mode"] in ("qa", "distill") for d in docs)
    assert {d["template_id"] for d in docs} <= {"rephrase.qa.v1", "rephrase.distill.v1"}

    # the same pages as a shards folder, read inside the pipeline; a corrupt shard goes to the ledger
    shards = tmp_path / "web" / "docs"
    write_table_atomic(rows_to_table([page.to_row()], doc_schema({})), str(shards / "part-00000-of-00002.parquet"))
    (shards / "part-00001-of-00002.parquet").write_bytes(b"PAR1 truncated")
    res2 = run_rephrase(_job(tmp_path / "re2", cache_dir=cache), rcfg, str(tmp_path / "web"))
    assert res2["usage"]["transformers"]["requests"] == 0  # same requests: answered from the cache
    assert [(d["id"], d["text"]) for d in _docs(tmp_path / "re2")] == [(d["id"], d["text"]) for d in docs]
    assert [r["reason"] for r in _ledger(tmp_path / "re2") if r["stage"] != "synth:rephrase"] == ["unreadable_shard"]

    from assay.synth.textbooks import TextbookConfig, topic_items

    cfg = TextbookConfig(audiences=["children"], styles=["story"], outline_sections=2, min_chars=1)
    out = run_textbooks(_job(tmp_path / "ol", sampling=Sampling(max_new_tokens=16)), cfg, topics=["volcanoes"])
    outline_id = topic_items(["volcanoes"], cfg)[0].id
    docs, ledger = _docs(tmp_path / "ol"), _ledger(tmp_path / "ol")
    assert out["kept"] == len(docs)
    assert all(d["parent_id"] == outline_id and d["template_id"] == "textbook.section.v1" for d in docs)
    assert all(1 <= d["sections"] <= 2 for d in docs)
    assert docs or any(r["reason"] == "empty_outline" and r["id"] == outline_id for r in ledger)


def test_rubric_annotation_writes_classifier_label_columns(tmp_path, backend):
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.synth_jobs.annotate import AnnotateJobConfig, run_annotate
    from assay.synth.rubric import RubricConfig, annotate

    docs = [Document("edu", "The mitochondrion is the organelle where cellular respiration releases energy "
                            "stored in glucose.", source="web", url="https://bio.example/cell"),
            Document("spam", "BUY NOW!!! cheap pills best price click here", source="web", url="https://x.example/")]
    write_table_atomic(rows_to_table([d.to_row() for d in docs], doc_schema({})),
                       str(tmp_path / "in" / "docs" / "part-00000-of-00001.parquet"))
    rubric = RubricConfig(rubrics=["edu_score", "knowledge_score"])
    job = AnnotateJobConfig(str(tmp_path / "in"), str(tmp_path / "out"), tiny_model_config(batch_size=4), rubric,
                            runner=RunnerConfig(workers=1, mode="in_memory"))
    result = run_annotate(job)
    assert result["kept"] == 2 and result["rejected"] == 0
    rows = {r["id"]: r for r in _docs(tmp_path / "out")}
    direct = {d.id: d for d in annotate(backend, docs, rubric)}
    for doc_id, row in rows.items():
        for name in ("edu_score", "knowledge_score"):
            assert 0.0 <= row[name] <= 5.0
            assert row[f"{name}_annotator"] == backend.model_id
            # same scores as calling the annotator directly (batches differ: padding moves the floats a little)
            assert row[name] == pytest.approx(direct[doc_id].meta[name], abs=1e-3)
    probs = backend.next_token_probs([[{"role": "user", "content": "Reply with one digit from 0 to 5."}]],
                                     ["0", "1", "2", "3", "4", "5"])[0]
    assert 0 < sum(probs.values()) <= 1.0 + 1e-6
    assert expected_score(probs) == pytest.approx(sum(int(k) * v for k, v in probs.items()) / sum(probs.values()))
    assert result["usage"]["transformers"]["requests"] == 4  # 2 docs x 2 rubrics, one forward pass each


def test_rerun_after_a_real_kill_generates_nothing_twice(tmp_path, backend):
    """`assay synth textbooks` is SIGKILLed mid-run; the rerun answers the finished requests from the cache,
    generates only the rest, and writes the same documents as an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from assay.pipelines.synth_jobs.generate import run_textbooks
    from assay.synth.tiny import GGUF_FILE, tiny_model_dir

    topics = ["volcanoes", "magnets", "rainbows", "tides"]
    (tmp_path / "topics.txt").write_text("\n".join(topics) + "\n")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "assay.pipelines.cli", "synth", "textbooks", "--topics", str(tmp_path / "topics.txt"),
           "--audiences", "children", "--styles", "story,lecture notes", "--model", tiny_model_dir(),
           "--gguf-file", GGUF_FILE, "--max-new-tokens", "10", "--batch-size", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = RequestCache(str(out / "cache"))
    deadline = time.time() + 240
    while len(cache) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Beam worker
    proc.wait()
    done = len(cache)
    assert 2 <= done < 8, f"kill came too late or too early: {done} cached"
    assert not (out / "docs").exists()  # nothing half-written was published

    before = backend.usage.requests
    resumed = run_textbooks(_job(out), _tb_cfg(), topics=topics)
    assert backend.usage.requests - before == 8 - done
    assert resumed["usage"]["transformers"]["cache_hits"] == done
    fresh = run_textbooks(_job(tmp_path / "fresh"), _tb_cfg(), topics=topics)
    assert resumed["kept"] == fresh["kept"]
    assert [(d["id"], d["text"]) for d in _docs(out)] == [(d["id"], d["text"]) for d in _docs(tmp_path / "fresh")]


@pytest.mark.gpu
def test_transformers_backend_on_cuda_matches_its_cpu_sampling_contract():
    """On a GPU machine: the same backend on CUDA, batched, seeded per prompt, with rubric probabilities."""
    import dataclasses

    from assay.synth.backends import make_backend

    gpu = make_backend(dataclasses.replace(tiny_model_config(batch_size=4), device="cuda"))
    msgs = [[{"role": "user", "content": f"Say something about the number {i}."}] for i in range(4)]
    sampled = Sampling(max_new_tokens=8, temperature=0.8, seed=0)
    together = gpu.generate(msgs, sampled, seeds=[1, 2, 3, 4])
    alone = gpu.generate(msgs[2:3], sampled, seeds=[3])
    assert together[2].text == alone[0].text
    assert all(c.tokens_out > 0 for c in together)
    probs = gpu.next_token_probs(msgs[:1], ["0", "1", "2", "3", "4", "5"])[0]
    assert 0 < sum(probs.values()) <= 1.0 + 1e-5
    assert gpu.usage.tokens_out == sum(c.tokens_out for c in together + alone)
