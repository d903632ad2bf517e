"""Ablations end to end on real text: a real-text recipe against a word-shuffled copy of the same documents,
two tiny sizes, three seeds; real Beam mixing, real BPE, real training and evaluation. Checks the ranking
and its confidence intervals, resume without retraining, lineage on every report row, degradation of a
recipe whose classifier column does not exist, and the dry run."""
import importlib
import inspect
import json
import os
import random

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.pipelines.ablate.cells import plan_cells
from assay.pipelines.ablate.dryrun import dry_run
from assay.pipelines.ablate.lineage import short
from assay.pipelines.ablate.plan import load_plan
from assay.pipelines.ablate.report import build_report
from assay.pipelines.ablate.runner import run_plan
from assay.pipelines.mix.recipe import recipe_hash
from assay.trainer.checkpoint import list_checkpoints
from assay.trainer.token_shards import TokenShardReader
from assay.trainer.tokenizer import load_tokenizer, tokenizer_hash

MODULES = ["json", "csv", "argparse", "collections", "functools", "pathlib", "textwrap", "logging", "subprocess",
           "threading", "decimal", "fractions", "statistics", "random", "heapq", "enum", "contextlib", "shutil",
           "tempfile", "zipfile", "datetime", "calendar", "email.message", "http.client", "unittest.case"]


def real_rows():
    """Real English text: docstrings of standard-library classes and functions."""
    rows = []
    for m in MODULES:
        mod = importlib.import_module(m)
        for name, obj in sorted(vars(mod).items()):
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == m:
                doc = inspect.getdoc(obj)
                if doc and len(doc) > 120:
                    rows.append({"id": f"{m}.{name}", "text": doc, "source": "stdlib", "url": "", "domain": "",
                                 "date": "", "language": "en", "n_words": len(doc.split())})
    return rows


def shuffled(rows):
    """Word-shuffled copies: the same words, no order (a clearly worse training set for real text)."""
    out = []
    for row in rows:
        words = row["text"].split()
        random.Random(row["id"]).shuffle(words)
        out.append(dict(row, id="shuf." + row["id"], text=" ".join(words)))
    return out


def write_pool(rows, folder):
    schema = doc_schema({"language": pa.string(), "n_words": pa.int64()})
    write_table_atomic(rows_to_table(rows, schema), os.path.join(folder, "docs", "part-00000-of-00001.parquet"))


RECIPE = """
seed = 7
[pools.web]
source = "{source}"
predicate = "{predicate}"
max_repeats = 3
[[phases]]
name = "phase1"
tokens = 3
weights = {{ web = 1.0 }}
[[phases]]
name = "phase2"
tokens = 1
weights = {{ web = 1.0 }}
"""

PLAN = """
name = "real-vs-shuffled"
seeds = [0, 1, 2]
torch_threads = 1
[recipes.real]
path = "{root}/real.toml"
[recipes.shuffled]
path = "{root}/shuffled.toml"
label = "word-shuffled control"
[recipes.edu]
path = "{root}/edu.toml"
needs = "an edu_score column: `assay classify score ... --column edu_score`"
[[sizes]]
name = "xs"
preset = "mini-1m"
tokens = 8192
model = {{ d_model = 32, n_layers = 1, n_heads = 2, n_kv_heads = 2, ffn_dim = 64 }}
[[sizes]]
name = "s"
preset = "mini-1m"
tokens = 8192
model = {{ d_model = 64, n_layers = 2, n_heads = 4, ffn_dim = 128 }}
[train]
micro_batch = 4
lr = 2e-2
warmup_steps = 3
peak_flops = 1e11
[mix]
seq_len = 64
heldout_fraction = 0.1
vocab_size = 512
[eval]
max_docs = 16
points = 2
[eval.sets.real]
source = "{root}/real"
"""


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    rows = real_rows()
    write_pool(rows, str(root / "real"))
    write_pool(shuffled(rows), str(root / "shuffled"))
    (root / "real.toml").write_text(RECIPE.format(source=root / "real", predicate="true"))
    (root / "shuffled.toml").write_text(RECIPE.format(source=root / "shuffled", predicate="true"))
    (root / "edu.toml").write_text(RECIPE.format(source=root / "real", predicate="edu_score >= 3"))
    (root / "plan.toml").write_text(PLAN.format(root=root))
    plan = load_plan(str(root / "plan.toml"))
    out = str(root / "out")
    summary = run_plan(plan, out, log=lambda m: None)
    report = build_report(out)
    return root, plan, out, summary, report


def _mtimes(out):
    found = {}
    for dirpath, _, files in os.walk(os.path.join(out, "cells")):
        for f in files:
            if f.endswith((".json", ".pt")):
                found[os.path.join(dirpath, f)] = os.stat(os.path.join(dirpath, f)).st_mtime_ns
    return found


def test_real_text_beats_shuffled_with_separate_intervals(ablation):
    _, _, _, summary, report = ablation
    assert not summary.failed
    assert len(summary.ran) == 12  # 2 available recipes x 2 sizes x 3 seeds
    assert report["primary_metric"] == "real.bits_per_byte" and not report["higher_is_better"]
    for size in ("xs", "s"):
        assert report["rankings"][size] == ["real", "shuffled"]
        assert report["separation"][size] == [{"better": "real", "worse": "shuffled", "cis_overlap": False}]
        rows = {r["recipe"]: r for r in report["rows"] if r["size"] == size and r["metric"] == "real.bits_per_byte"}
        assert rows["real"]["n"] == rows["shuffled"]["n"] == 3
        assert rows["real"]["ci95_high"] < rows["shuffled"]["ci95_low"]
        assert rows["real"]["ci95_low"] < rows["real"]["mean"] < rows["real"]["ci95_high"]
    assert report["ranking_agreement"]["agree"] is True
    fits = report["scaling"]
    assert set(fits) == {"real", "shuffled"} and all(f and f["points"] == 2 for f in fits.values())


def test_recipe_without_its_classifier_column_degrades_clearly(ablation):
    root, _, out, summary, report = ablation
    assert set(summary.unavailable) == {"edu/xs", "edu/s"}
    assert "edu_score" in summary.unavailable["edu/xs"] and "columns available" in summary.unavailable["edu/xs"]
    assert not os.path.exists(os.path.join(out, "cells", "edu"))
    text = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "## Recipes that could not run" in text and "assay classify score" in text
    assert "edu" not in report["recipes"]


def test_every_report_row_carries_its_lineage(ablation):
    _, plan, out, _, report = ablation
    cells = {c.key: c for c in plan_cells(plan)}
    md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    # the rows of the two metric tables (primary metric; every metric): 12 and 13 columns
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and line.count("|") >= 13
                  and "---" not in line and not line.startswith(("| recipe", "| metric"))]
    metric_rows = report["rows"]
    assert len(metric_rows) == 2 * 2 * 3  # recipes x sizes x (real.bits_per_byte, real.loss, train.loss)
    assert len(table_rows) == 2 * 2 + len(metric_rows)
    for row in metric_rows:
        lin = row["lineage"]
        assert all(lin[k] and all(lin[k]) for k in ("recipe_hash", "manifest_fingerprint", "tokenizer_hash",
                                                       "code_version", "config_hash"))
        assert len(lin["recipe_hash"]) == len(lin["manifest_fingerprint"]) == len(lin["tokenizer_hash"]) == 1
        assert len(lin["config_hash"]) == 3  # one config per seed
        for cell_path in lin["cells"]:
            result = json.load(open(os.path.join(out, cell_path), encoding="utf-8"))
            key = f"{result['cell']['recipe']}/{result['cell']['size']}/seed-{result['cell']['seed']}"
            reader = TokenShardReader(result["data"], verify=True)
            assert lin["recipe_hash"] == [recipe_hash(cells[key].resolved)] == [reader.manifest["recipe_hash"]]
            assert lin["manifest_fingerprint"] == [reader.fingerprint]
            assert lin["tokenizer_hash"] == [tokenizer_hash(load_tokenizer(reader.tokenizer_path))]
        matching = [line for line in table_rows if f" {row['size']} |" in line and f"| {row['recipe']}" in line
                    and short(lin["manifest_fingerprint"][0]) in line and short(lin["tokenizer_hash"][0]) in line
                    and short(lin["recipe_hash"][0]) in line and lin["code_version"][0][4:] in line]
        assert matching, row
    for line in table_rows:  # no table row without lineage
        assert any(short(r["lineage"]["manifest_fingerprint"][0]) in line for r in metric_rows), line


def test_rerun_skips_finished_cells_without_retraining(ablation):
    _, plan, out, _, _ = ablation
    before = _mtimes(out)
    again = run_plan(plan, out, log=lambda m: None)
    assert again.ran == [] and len(again.skipped) == 12 and not again.mixes_built
    assert _mtimes(out) == before
    # a cell whose result was lost (killed between training and writing it) is re-evaluated, not retrained
    cell = os.path.join(out, "cells", "real", "s", "seed-1")
    checkpoints = {p: os.stat(p).st_mtime_ns for p in list_checkpoints(os.path.join(cell, "train"))}
    old = json.load(open(os.path.join(cell, "result.json"), encoding="utf-8"))
    os.remove(os.path.join(cell, "result.json"))
    third = run_plan(plan, out, log=lambda m: None)
    assert third.ran == ["real/s/seed-1"] and not third.mixes_built
    new = json.load(open(os.path.join(cell, "result.json"), encoding="utf-8"))
    assert new["train_steps_this_run"] == 0 and old["train_steps_this_run"] == old["steps"] > 0
    assert {p: os.stat(p).st_mtime_ns for p in list_checkpoints(os.path.join(cell, "train"))} == checkpoints
    assert new["metrics"] == old["metrics"] and new["lineage"] == old["lineage"]


def test_dry_run_lists_cells_budgets_and_compute(ablation):
    from assay.pipelines.cli import app

    root, plan, out, _, _ = ablation
    before = _mtimes(out)
    res = CliRunner().invoke(app, ["ablate", str(root / "plan.toml"), "--dry-run", "--output", out])
    assert res.exit_code == 0, res.output
    cells = plan_cells(plan)
    assert len(cells) == 18
    for cell in cells:
        assert cell.flops == 6.0 * cell.params * cell.tokens
    text = " ".join(res.output.split())
    assert "18 cells" in text and "estimated compute" in text
    assert f"{cells[0].params:,}" in text and f"{cells[0].tokens:,}" in text
    assert "recipe 'edu' cannot be mixed now" in text and "edu_score" in text
    assert text.count("done") >= 12 and "cached" in text and "stale" not in text
    assert _mtimes(out) == before  # the dry run writes nothing under the output
    # a result computed with another config is what the run would set aside and rerun: the dry run says so
    path = os.path.join(out, "cells", "real", "xs", "seed-1", "result.json")
    original = open(path, encoding="utf-8").read()
    old = json.loads(original)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(old, lineage=dict(old["lineage"], config_hash="0" * 64)), fh)
        state = dry_run(plan, out).state
        assert state["real/xs/seed-1"] == "stale: reruns" and state["real/xs/seed-0"] == "done"
        res = CliRunner().invoke(app, ["ablate", str(root / "plan.toml"), "--dry-run", "--output", out])
        assert "stale: reruns" in res.output
    finally:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(original)


def test_a_cell_computed_with_another_config_is_set_aside_and_rerun(ablation):
    _, plan, out, _, _ = ablation
    cell = os.path.join(out, "cells", "shuffled", "xs", "seed-2")
    path = os.path.join(cell, "result.json")
    old = json.load(open(path, encoding="utf-8"))
    tampered = dict(old, lineage=dict(old["lineage"], config_hash="0" * 64))  # as if the plan had changed
    open(path, "w", encoding="utf-8").write(json.dumps(tampered))
    again = run_plan(plan, out, log=lambda m: None)
    assert again.stale == ["shuffled/xs/seed-2"] and again.ran == ["shuffled/xs/seed-2"]
    new = json.load(open(path, encoding="utf-8"))
    assert new["train_steps_this_run"] == new["steps"]  # trained from scratch, not resumed from the old run
    assert new["metrics"] == old["metrics"]  # same config on CPU: the same numbers
    kept = [d for d in os.listdir(os.path.dirname(cell)) if d.startswith("seed-2.stale-")]
    assert len(kept) == 1
    report = build_report(out)  # the set-aside folder is not read
    assert all(len(r["lineage"]["cells"]) == 3 for r in report["rows"])


def test_cli_report_and_errors(ablation, tmp_path):
    from assay.pipelines.cli import app

    _, _, out, _, _ = ablation
    os.remove(os.path.join(out, "report.md"))
    res = CliRunner().invoke(app, ["ablate-report", out])
    assert res.exit_code == 0 and os.path.isfile(os.path.join(out, "report.md")), res.output
    empty = CliRunner().invoke(app, ["ablate-report", str(tmp_path)])
    assert empty.exit_code == 2 and "run `assay ablate PLAN --output" in empty.output
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = []\n')
    res = CliRunner().invoke(app, ["ablate", str(bad), "--dry-run"])
    assert res.exit_code == 2 and "seeds: give distinct non-negative integers" in " ".join(res.output.split())


def test_an_interrupted_cell_of_another_config_is_not_resumed(ablation):
    _, plan, out, _, _ = ablation
    cell = os.path.join(out, "cells", "real", "xs", "seed-0")
    old = json.load(open(os.path.join(cell, "result.json"), encoding="utf-8"))
    os.remove(os.path.join(cell, "result.json"))  # killed after training, under a config since changed:
    with open(os.path.join(cell, "started.json"), "w", encoding="utf-8") as fh:
        json.dump({"config_hash": "f" * 64}, fh)
    again = run_plan(plan, out, log=lambda m: None)
    assert again.stale == ["real/xs/seed-0"] and again.ran == ["real/xs/seed-0"]
    new = json.load(open(os.path.join(cell, "result.json"), encoding="utf-8"))
    assert new["train_steps_this_run"] == new["steps"] and new["metrics"] == old["metrics"]


def test_a_pool_rebuilt_with_other_data_gets_a_new_mix_and_its_cells_rerun(ablation):
    """Recipe files unchanged, pool data changed (e.g. curation rerun with other thresholds): the mix cache and
    the finished cells of that recipe must not be reused; other recipes stay finished."""
    from assay.pipelines.mix.pools import pools_fingerprint

    root, plan, out, _, _ = ablation
    recipe = next(c.resolved for c in plan_cells(plan) if c.recipe == "shuffled")
    before = pools_fingerprint(recipe)
    rows = shuffled(real_rows())
    write_pool(rows, str(root / "shuffled"))  # byte-identical rebuild: nothing to redo
    assert pools_fingerprint(recipe) == before
    write_pool(rows[: len(rows) * 3 // 4], str(root / "shuffled"))  # a quarter of the pool gone
    assert pools_fingerprint(recipe) != before
    again = run_plan(plan, out, log=lambda m: None)
    assert sorted(again.stale) == sorted(again.ran) == sorted(
        f"shuffled/{size}/seed-{seed}" for size in ("xs", "s") for seed in (0, 1, 2))
    assert len(again.mixes_built) == 1  # a new mix for the shuffled recipe only (both sizes share its budget)
    assert len(again.skipped) == 6
