"""Cells trained in parallel worker processes give the same numbers as cells trained one after another (same
seeds, one torch thread each), and their results record threads, timings and tokens/s. Real mixing and training."""
import dataclasses
import json
import os

from test_ablate_plan import RECIPE, real_rows, write_pool

from assay.pipelines.ablate.plan import load_plan
from assay.pipelines.ablate.runner import run_plan

PLAN = """
name = "parallel"
seeds = [0, 1]
torch_threads = 1
mix_cache = "{root}/mixes"
[recipes.real]
path = "{root}/real.toml"
[[sizes]]
name = "xs"
preset = "mini-1m"
tokens = 4096
model = {{ d_model = 32, n_layers = 1, n_heads = 2, n_kv_heads = 2, ffn_dim = 64 }}
[train]
micro_batch = 4
lr = 2e-2
warmup_steps = 2
peak_flops = 1e11
[mix]
seq_len = 64
heldout_fraction = 0.1
vocab_size = 512
[eval]
max_docs = 8
points = 1
[eval.sets.real]
source = "{root}/real"
"""


def _results(out):
    found = {}
    for seed in (0, 1):
        with open(os.path.join(out, "cells", "real", "xs", f"seed-{seed}", "result.json")) as fh:
            found[seed] = json.load(fh)
    return found


def test_parallel_cells_equal_sequential_cells(tmp_path):
    write_pool(real_rows(), str(tmp_path / "real"))
    (tmp_path / "real.toml").write_text(RECIPE.format(source=tmp_path / "real", predicate="true"))
    (tmp_path / "plan.toml").write_text(PLAN.format(root=tmp_path))
    plan = load_plan(str(tmp_path / "plan.toml"))
    one = run_plan(plan, str(tmp_path / "one"), log=lambda m: None)
    two = run_plan(dataclasses.replace(plan, parallel_cells=2), str(tmp_path / "two"), log=lambda m: None)
    assert sorted(one.ran) == sorted(two.ran) == ["real/xs/seed-0", "real/xs/seed-1"]
    assert not one.failed and not two.failed
    a, b = _results(str(tmp_path / "one")), _results(str(tmp_path / "two"))
    for seed in (0, 1):
        assert a[seed]["metrics"] == b[seed]["metrics"]
        assert b[seed]["torch_threads"] == 1 and b[seed]["tokens_per_second"] > 0
        assert 0 < b[seed]["train_seconds"] < b[seed]["wall_seconds"]
    assert a[0]["metrics"] != a[1]["metrics"]  # the seeds differ, so equality above is not vacuous
