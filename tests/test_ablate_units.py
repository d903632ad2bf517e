"""Ablation pieces without training: Student-t intervals, scaling fits, rankings, plan validation, budgets."""
import math

import pytest

from assay.groundwork.config import ConfigError
from assay.pipelines.ablate.cells import plan_cells
from assay.pipelines.ablate.plan import load_plan
from assay.pipelines.ablate.stats import fit_scaling, mean_ci, rank, rank_agreement


def test_mean_ci_matches_the_t_table():
    s = mean_ci([1.0, 2.0, 3.0])
    # n = 3: t(0.975, 2) = 4.3027 (any t table); std = 1; half width = 4.3027 / sqrt(3)
    assert s.n == 3 and s.mean == 2.0 and s.std == 1.0
    assert s.high - s.mean == pytest.approx(4.3027 / math.sqrt(3), abs=1e-4)
    assert s.mean - s.low == pytest.approx(s.high - s.mean)
    wide = mean_ci([1.0, 2.0, 3.0], confidence=0.99)  # t(0.995, 2) = 9.9248
    assert wide.high - wide.mean == pytest.approx(9.9248 / math.sqrt(3), abs=1e-3)
    one = mean_ci([5.0, float("nan")])  # a missing seed is not a zero
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.low)
    assert one.overlaps(mean_ci([9.0, 9.5])) is True  # no interval: never claimed separated


def test_scaling_fit_recovers_a_power_law():
    params = [1e5, 3e5, 1e6, 3e6]
    errors = [2.5 * p ** -0.07 for p in params]
    fit = fit_scaling(params, errors)
    assert fit.slope == pytest.approx(-0.07, abs=1e-9) and fit.intercept == pytest.approx(math.log(2.5))
    assert fit.r2 == pytest.approx(1.0) and fit.points == 4
    assert fit.predict(1e7) == pytest.approx(2.5 * 1e7 ** -0.07)
    assert fit_scaling([1e5, 1e5], [1.0, 2.0]) is None  # one size: no line
    assert fit_scaling([1e5, 1e6], [1.0, 0.0]) is None  # log of zero error dropped -> one point


def test_rank_and_agreement():
    assert rank({"a": 3.0, "b": 2.0, "c": float("nan")}, higher_better=False) == ["b", "a"]
    assert rank({"a": 0.3, "b": 0.5}, higher_better=True) == ["b", "a"]
    same = rank_agreement({"s": ["b", "a", "c"], "m": ["b", "a", "c"]})
    assert same["agree"] and same["kendall_tau_vs_largest"] == {"s": pytest.approx(1.0)}
    flip = rank_agreement({"s": ["a", "b", "c"], "m": ["c", "b", "a"]})
    assert not flip["agree"] and flip["kendall_tau_vs_largest"]["s"] == pytest.approx(-1.0)


RECIPE = """
[pools.web]
source = "out/nowhere"
[[phases]]
name = "p1"
tokens = 300
weights = { web = 1 }
[[phases]]
name = "p2"
tokens = 100
weights = { web = 1 }
"""

PLAN = """
seeds = [0, 1]
[recipes.web]
path = "{recipe}"
[[sizes]]
name = "a"
preset = "mini-1m"
tokens = 10000
{extra_size}
[train]
micro_batch = 4
{extra_train}
[mix]
seq_len = 50
[eval.sets.web]
source = "out/nowhere"
"""


def _plan(tmp_path, extra_size="", extra_train=""):
    (tmp_path / "r.toml").write_text(RECIPE)
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(recipe=tmp_path / "r.toml", extra_size=extra_size, extra_train=extra_train))
    return str(path)


def test_cells_scale_each_phase_to_the_size_budget(tmp_path):
    plan = load_plan(_plan(tmp_path))
    cells = plan_cells(plan)
    assert [c.key for c in cells] == ["web/a/seed-0", "web/a/seed-1"]
    cell = cells[0]
    assert cell.steps == 10000 // (4 * 50) == 50 and cell.tokens == 50 * 4 * 50
    # 200 sequences split 3:1 over the phases, each phase's tokens a whole number of 51-token rows
    assert [p.tokens for p in cell.resolved.phases] == [150 * 51, 50 * 51]
    assert cell.resolved.seq_len == 50 and cell.resolved.tokenizer.vocab_size == plan.mix.vocab_size
    assert cell.model.vocab_size == plan.mix.vocab_size and cell.flops == 6 * cell.params * cell.tokens
    assert cells[0].recipe_hash == cells[1].recipe_hash  # seeds share one mix


def test_the_plans_mix_runner_is_every_recipes_runner(tmp_path):
    path = _plan(tmp_path)
    with open(path, "a") as fh:
        fh.write("[mix.runner]\nworkers = 3\nmode = \"multi_processing\"\n")
    plan = load_plan(path)
    assert (plan.mix.runner.workers, plan.mix.runner.mode, plan.mix.runner.rows_per_task) == (3, "multi_processing",
                                                                                              2000)
    assert all(c.resolved.runner == plan.mix.runner for c in plan_cells(plan))
    with open(path, "a") as fh:
        fh.write("rows_per_task = 0\n")
    with pytest.raises(ConfigError, match=r"mix\.runner\.rows_per_task: must be >= 1"):
        load_plan(path)


@pytest.mark.parametrize("extra_size, extra_train, message", [
    ('preset = "mini-3t"', "", "sizes[0].preset: unknown preset 'mini-3t'"),
    ("model = { n_heads = 5 }", "", "sizes[0].model: [model] d_model (96) must be divisible by n_heads (5)"),
    ("model = { vocab_size = 100 }", "", "sizes[0].model.vocab_size: set by the plan's mix.vocab_size"),
    ("model = { widht = 3 }", "", "sizes[0].model: unknown model fields ['widht']"),
    ("", "max_steps = 10", "train.max_steps: set by the ablation"),
    ("", "lr_max = 1.0", "train.lr_max: not a trainer [train] field"),
    ("", 'schedule = "linear"', "train: schedule: expected one of ['cosine', 'wsd', 'constant']"),
])
def test_plan_errors_name_the_field(tmp_path, extra_size, extra_train, message):
    if extra_size.startswith("preset"):
        text = open(_plan(tmp_path)).read().replace('preset = "mini-1m"', extra_size)
        (tmp_path / "plan.toml").write_text(text)
        path = str(tmp_path / "plan.toml")
    else:
        path = _plan(tmp_path, extra_size, extra_train)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(err.value).startswith(path + ": ") and message in str(err.value)


def test_missing_recipe_file_says_where_paths_are_relative_to(tmp_path):
    path = _plan(tmp_path)
    (tmp_path / "r.toml").unlink()
    with pytest.raises(ConfigError, match="recipes.web.path: .* not found .*relative to the directory"):
        load_plan(path)
