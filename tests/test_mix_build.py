"""`assay mix` end to end on real text: DuckDB pools, a trained BPE, Beam (FnApiRunner) tokenizing,
packing, shards read back with the trainer's reader."""
import importlib
import inspect
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.groundwork.config import ConfigError
from assay.pipelines.mix.build import run_mix
from assay.pipelines.mix.recipe import load_recipe
from assay.pipelines.mix.sampling import BudgetError
from assay.trainer.token_shards import TokenShardReader
from assay.trainer.tokenizer import load_tokenizer

MODULES = ["json", "csv", "argparse", "collections", "functools", "pathlib", "textwrap", "logging", "subprocess",
           "threading", "decimal", "fractions", "statistics", "random", "heapq", "enum", "contextlib", "shutil",
           "tempfile", "zipfile", "datetime", "calendar"]


def _stdlib_docs():
    """Real English text: docstrings of standard-library classes and functions."""
    rows = []
    for m in MODULES:
        mod = importlib.import_module(m)
        for name, obj in sorted(vars(mod).items()):
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == m:
                doc = inspect.getdoc(obj)
                if doc and len(doc) > 80:
                    rows.append({"id": f"{m}.{name}", "text": doc, "source": "stdlib", "url": "", "domain": "",
                                 "date": "", "language": "en" if len(rows) % 5 else "xx",
                                 "language_score": round(0.5 + (len(doc) % 50) / 100, 3)})
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pools")
    rows = _stdlib_docs()
    rows.append(dict(rows[0], id="empty.doc", text=""))  # empty texts are skipped, not packed
    schema = doc_schema({"language": pa.string(), "language_score": pa.float64()})
    half = len(rows) // 2
    write_table_atomic(rows_to_table(rows[:half], schema), str(root / "demo/docs/part-00000-of-00002.parquet"))
    write_table_atomic(rows_to_table(rows[half:], schema), str(root / "demo/docs/part-00001-of-00002.parquet"))
    return root, {r["id"]: r["text"] for r in rows}


RECIPE = """
seed = {seed}
seq_len = 64
heldout_fraction = 0.05
sequences_per_shard = 50
[tokenizer]
vocab_size = 600
path = "{tokenizer}"
[runner]
workers = 2
mode = "{mode}"
rows_per_task = {rows_per_task}
[pools.web]
source = "{root}/demo"
[pools.strict]
source = "{root}/demo"
predicate = "language = 'en' AND language_score >= 0.7"
max_repeats = {repeats}
[pools.synthetic]
source = "{root}/no-synthetic-yet"
optional = true
[[phases]]
name = "phase1"
tokens = 6000
weights = {{ web = 1 }}
[[phases]]
name = "phase2"
tokens = {phase2}
weights = {{ strict = 0.7, synthetic = 0.3 }}
"""


def _recipe(root, name="r.toml", seed=5, mode="in_memory", phase2=25000, repeats=2, tokenizer="", rows_per_task=2000):
    path = root / name
    path.write_text(RECIPE.format(root=root, seed=seed, mode=mode, phase2=phase2, repeats=repeats,
                                  tokenizer=tokenizer, rows_per_task=rows_per_task))
    return str(path)


@pytest.fixture(scope="module")
def built(corpus):
    root, _ = corpus
    recipe = load_recipe(_recipe(root, mode="multi_processing"))
    report = run_mix(recipe, str(root / "mix-a"), progress=False)
    return root / "mix-a", report


def test_manifest_counts_equal_tokens_on_disk(built):
    out, report = built
    reader = TokenShardReader(str(out))
    m = reader.manifest
    itemsize = np.dtype(m["dtype"]).itemsize
    on_disk = sum(os.path.getsize(out / s["file"]) for s in m["shards"]) // itemsize
    assert on_disk == m["tokens"] == sum(p["tokens"] for p in m["phases"]) == len(reader) * 65
    tokens = np.concatenate([np.fromfile(out / s["file"], dtype=m["dtype"]) for s in m["shards"]])
    assert len(tokens) == on_disk and int(tokens.max()) < m["vocab_size"]
    for phase in m["phases"]:
        assert phase["tokens"] >= phase["budget"] and phase["tokens"] == phase["sequences"] * 65
        pool_tokens = sum(p["tokens"] for p in phase["pools"].values())
        assert pool_tokens == phase["document_tokens"] == phase["tokens"] + phase["dropped_tail_tokens"]
        for use in phase["pools"].values():
            assert use["unique_tokens"] + use["repeated_tokens"] == use["tokens"]
        # every document in the phase contributed exactly one EOS, except a cut tail document's
        rows = tokens.reshape(-1, 65)[phase["first_sequence"]:phase["first_sequence"] + phase["sequences"]]
        eos = int((rows == m["eos_id"]).sum())
        assert eos in (phase["documents"], phase["documents"] - 1)
    strict = m["phases"][1]["pools"]["strict"]
    assert strict["repeated_tokens"] > 0 and strict["epochs"] == 2  # phase 2 needs a second pass over strict
    assert m["pools"]["synthetic"]["skipped"] and "synthetic" not in m["phases"][1]["pools"]
    assert m["pools"]["strict"]["documents"] < m["pools"]["web"]["documents"]


def _phase_documents(out, reader, phase_index):
    """Rebuild the phase's packed stream from the index and split it into documents at EOS."""
    m = reader.manifest
    phase = m["phases"][phase_index]
    start, n = phase["first_sequence"], phase["sequences"]
    stream = np.empty((n, 65), dtype=np.int64)
    for i in range(start, start + n):
        stream[int(reader.index[i][3])] = reader.sequence(i)
    flat = stream.reshape(-1)
    ends = np.flatnonzero(flat == m["eos_id"])
    pieces, begin = [], 0
    for end in ends:
        pieces.append(flat[begin:end])
        begin = end + 1
    return pieces


def test_decoding_packed_sequences_gives_back_the_documents(built, corpus):
    out, _ = built
    _, texts = corpus
    reader = TokenShardReader(str(out))
    tok = load_tokenizer(reader.tokenizer_path)
    heldout = {name: pq.read_table(out / "heldout" / f"{name}.parquet").to_pydict() for name in ("web", "strict")}
    heldout_texts = set(heldout["web"]["text"]) | set(heldout["strict"]["text"])
    assert heldout["web"]["id"] and set(heldout["web"]["text"]) <= set(texts.values())
    known = set(texts.values())
    for phase_index in (0, 1):
        docs = _phase_documents(out, reader, phase_index)
        decoded = [tok.decode(d.tolist(), skip_special_tokens=False) for d in docs]
        assert len(decoded) == reader.manifest["phases"][phase_index]["documents"] - (
            1 if reader.manifest["phases"][phase_index]["dropped_tail_tokens"] else 0)
        assert all(text in known for text in decoded)
        assert not heldout_texts & set(decoded)  # held-out documents never train
        assert "" not in decoded


def test_same_seed_gives_identical_bytes(built, corpus):
    out, _ = built
    root, _ = corpus
    again = root / "mix-b"
    # another runner mode and many small work items: the bytes must not depend on how Beam split the work
    run_mix(load_recipe(_recipe(root, "same.toml", mode="in_memory", rows_per_task=37)), str(again),
            progress=False)
    files = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert files == sorted(os.path.relpath(os.path.join(d, f), again) for d, _, fs in os.walk(again) for f in fs)
    for name in files:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = root / "mix-seed"
    run_mix(load_recipe(_recipe(root, "seed.toml", seed=6,
                                tokenizer=str(out / "tokenizer.json"))), str(other), progress=False)
    a, b = TokenShardReader(str(out)), TokenShardReader(str(other))
    assert a.manifest["tokenizer_hash"] == b.manifest["tokenizer_hash"]  # loaded, not retrained
    assert a.fingerprint != b.fingerprint
    assert not np.array_equal(a.next_batch(4), b.next_batch(4))


def test_reader_on_a_real_mix_resumes_and_splits(built):
    out, _ = built
    whole = TokenShardReader(str(out))
    assert whole.phase_of(0) == "phase1" and whole.phase_of(len(whole) - 1) == "phase2"
    all_rows = np.stack(list(whole))
    parts = [np.stack(list(TokenShardReader(str(out), rank=r, world_size=3))) for r in range(3)]
    assert sum(len(p) for p in parts) == len(all_rows)
    assert sorted(map(bytes, np.concatenate(parts).astype(np.int64))) == sorted(map(bytes, all_rows))
    reader = TokenShardReader(str(out), rank=1, world_size=3)
    reader.next_batch(5)
    state = reader.state_dict()
    tail = _drain(reader)
    resumed = TokenShardReader(str(out), rank=1, world_size=3)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(_drain(resumed), tail)
    assert len(tail) == len(reader) - 5


def _drain(reader):
    batches = []
    while True:
        try:
            batches.append(reader.next_batch(4))
        except StopIteration:
            return np.concatenate(batches)


def test_impossible_budget_is_a_clear_error(corpus):
    root, _ = corpus
    recipe = load_recipe(_recipe(root, "big.toml", phase2=10**6, repeats=1))
    with pytest.raises(BudgetError, match=r"phases\[1\] \('phase2'\) needs .* from pool 'strict'.*max_repeats = 1"):
        run_mix(recipe, str(root / "mix-big"), progress=False)
    assert not (root / "mix-big").exists()
    assert not [p for p in os.listdir(root) if ".tmp-" in p]  # the work directory is cleaned up


def test_bad_predicate_and_missing_pool_name_the_field(corpus):
    root, _ = corpus
    text = open(_recipe(root, "base.toml")).read()
    bad = root / "bad.toml"
    bad.write_text(text.replace("language_score >= 0.7", "edu_score >= 3"))
    with pytest.raises(ConfigError, match=r"pools\.strict\.predicate: .*edu_score.*columns available"):
        run_mix(load_recipe(str(bad)), str(root / "mix-bad"), dry_run=True, progress=False)
    bad.write_text(text.replace("optional = true", "optional = false"))
    with pytest.raises(ConfigError, match=r"pools\.synthetic\.source: no Parquet shards.*optional = true"):
        run_mix(load_recipe(str(bad)), str(root / "mix-bad"), dry_run=True, progress=False)


def test_cli_dry_run_prints_the_table_and_writes_nothing(corpus, built):
    from assay.pipelines.cli import app

    root, _ = corpus
    _, report = built
    out = root / "mix-dry"
    result = CliRunner().invoke(app, ["mix", _recipe(root, "dry.toml"), "--output", str(out), "--dry-run"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert f"{report.pools['web'].tokens:,}" in result.output and "phase2" in result.output
    assert "skipped" in result.output
    result = CliRunner().invoke(app, ["mix", _recipe(root, "big2.toml", phase2=10**6, repeats=1), "--dry-run"],
                                terminal_width=200)
    assert result.exit_code == 1 and "raise pools.strict.max_repeats" in " ".join(result.output.split())


def test_cli_refuses_to_overwrite_a_directory_that_is_not_a_mix(corpus):
    from assay.pipelines.cli import app

    root, _ = corpus
    result = CliRunner().invoke(app, ["mix", _recipe(root), "--output", str(root / "demo")], terminal_width=200)
    assert result.exit_code == 2 and "not a token-shard directory" in " ".join(result.output.split())
    assert (root / "demo" / "docs").is_dir()


def test_work_items_cover_each_pool_exactly_once(corpus):
    import duckdb

    from assay.pipelines.mix.pools import pool_query, resolve_pools
    from assay.pipelines.mix.tokenize_beam import chunk_tasks

    root, _ = corpus
    pools, skipped = resolve_pools(load_recipe(_recipe(root, "chunks.toml")), warn=lambda _: None)
    assert set(skipped) == {"synthetic"}
    tasks = chunk_tasks(pools, 37)
    assert len(tasks) > 2 * len(pools) and len({name for _, name, _ in tasks}) == len(tasks)
    with duckdb.connect() as con:
        for pool in pools:
            whole = sorted(con.execute(pool_query(pool)).fetchall())
            parts = sorted(row for p, _, sql in tasks if p == pool.name for row in con.execute(sql).fetchall())
            assert parts == whole and whole


def test_unreadable_shard_names_the_pool_source(tmp_path):
    bad = tmp_path / "broken" / "docs"
    bad.mkdir(parents=True)
    (bad / "part-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[pools.web]\nsource = "{tmp_path}/broken"\n[[phases]]\nname = "p"\ntokens = 10\n'
                      'weights = { web = 1 }\n')
    with pytest.raises(ConfigError, match=r"pools\.web\.source: cannot read the Parquet shards"):
        run_mix(load_recipe(str(recipe)), str(tmp_path / "out"), progress=False)
