"""The decision math of an ablation report on synthetic cell results whose answers are known in closed form:
Welch intervals (against the t table and against scipy's own Welch test), signal-to-noise ratios, "no
decision" where an interval covers 0, agreement across sizes, and the compute each decision cost."""
import json
import math
import os

import pytest

from assay.pipelines.ablate.decisions import metric_decisions
from assay.pipelines.ablate.report import build_report
from assay.pipelines.ablate.stats import decide, signal_to_noise, welch_difference

T_975_DF4 = 2.7764451051977987  # two-sided 95% Student t quantile, 4 degrees of freedom (t table)


def test_welch_interval_of_equal_variances_equals_the_t_table():
    # means 2 and 5, sample variance 1 each, n = 3: se = sqrt(1/3 + 1/3), Welch df = (2/3)^2 / (2 (1/3)^2 / 2) = 4
    d = welch_difference([1, 2, 3], [4, 5, 6])
    assert d.diff == pytest.approx(-3.0)
    assert d.df == pytest.approx(4.0)
    half = T_975_DF4 * math.sqrt(2 / 3)
    assert (d.low, d.high) == (pytest.approx(-3 - half), pytest.approx(-3 + half))
    assert d.decided


def test_welch_interval_with_unequal_variances_and_sizes_matches_scipys_welch_test():
    from scipy import stats

    a, b = [0.0, 2.0, 4.0], [8.0, 9.0, 10.0, 11.0, 12.0]  # variances 4 and 2.5
    va, vb = 4 / 3, 2.5 / 5
    d = welch_difference(a, b)
    assert d.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 4))  # Welch-Satterthwaite
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_an_interval_covering_zero_is_no_decision():
    # a difference of 0.5 against a half-width of 2.78 * sqrt(2/3) = 2.27
    groups = {"a": [1.0, 2.0, 3.0], "b": [1.5, 2.5, 3.5], "c": [10.0, 11.0, 12.0]}
    d = decide(groups, higher_better=False)
    assert d["best"] == "a" and d["order"] == ["a", "b", "c"]
    versus = {v["other"]: v for v in d["versus"]}
    assert not versus["b"]["decided"] and versus["b"]["low"] < 0 < versus["b"]["high"]
    assert versus["c"]["decided"] and versus["c"]["diff"] == pytest.approx(-9.0)
    assert d["winner"] is None  # best by mean, but not supported against b


def test_a_winner_needs_every_comparison_decided_in_the_metrics_direction():
    groups = {"a": [0.50, 0.51, 0.52], "b": [0.40, 0.41, 0.42]}
    assert decide(groups, higher_better=True)["winner"] == "a"  # accuracy-like: higher wins
    assert decide(groups, higher_better=False)["winner"] == "b"  # loss-like: lower wins


def test_one_seed_gives_no_interval_and_no_decision():
    d = welch_difference([1.0], [5.0, 6.0])
    assert math.isnan(d.low) and not d.decided


def test_signal_to_noise_ratio_in_closed_form():
    # recipe means 1, 2, 3 (std 1); each recipe's seeds are mean -/+ 0.5 around it (seed std 0.5): SNR = 2
    groups = {"a": [0.5, 1.0, 1.5], "b": [1.5, 2.0, 2.5], "c": [2.5, 3.0, 3.5]}
    sn = signal_to_noise(groups)
    assert (sn.signal, sn.noise, sn.snr, sn.recipes) == (pytest.approx(1.0), pytest.approx(0.5), pytest.approx(2.0), 3)
    # noise is the mean of the recipes' seed stds (0.5 and 1.5 -> 1); signal of means 0 and 4 is 4 / sqrt(2)
    sn = signal_to_noise({"a": [-0.5, 0.0, 0.5], "b": [2.5, 4.0, 5.5]})
    assert sn.noise == pytest.approx(1.0) and sn.snr == pytest.approx(4 / math.sqrt(2))


def test_signal_to_noise_edge_cases():
    assert math.isinf(signal_to_noise({"a": [1.0, 1.0], "b": [2.0, 2.0]}).snr)  # seeds agree exactly
    assert math.isnan(signal_to_noise({"a": [1.0, 2.0]}).snr)  # one recipe: nothing to separate


def _cell(recipe, size, seed, value, wall=1800.0, threads=2, flops=1e12, tps=5000.0):
    return {"cell": {"recipe": recipe, "size": size, "seed": seed}, "metrics": {"ref.bits_per_byte": value},
            "wall_seconds": wall, "torch_threads": threads, "flops": flops, "tokens_per_second": tps}


def _by(values: dict):
    return {(r, s): [_cell(r, s, i, v) for i, v in enumerate(vals)] for (r, s), vals in values.items()}


def test_decisions_per_size_agreement_and_cost():
    values = {("clean", "xs"): [1.0, 1.1, 1.2], ("raw", "xs"): [2.0, 2.1, 2.2],
              ("clean", "s"): [0.9, 1.0, 1.1], ("raw", "s"): [0.95, 1.05, 1.15]}
    dec = metric_decisions(_by(values), ["clean", "raw"], ["xs", "s"], "ref.bits_per_byte")
    xs, s = dec["sizes"]["xs"], dec["sizes"]["s"]
    assert xs["best"] == xs["winner"] == "clean" and xs["versus"][0]["decided"]
    assert s["best"] == "clean" and s["winner"] is None and not s["versus"][0]["decided"]  # 0.05 apart, seed std 0.1
    assert dec["agreement"]["agree"] is True  # same order by mean at both sizes
    # 6 cells (3 seeds x 2 recipes), each 1800 s x 2 threads = 1 CPU-hour and 1e12 FLOPs
    assert xs["versus"][0]["cpu_hours"] == pytest.approx(6.0) and xs["versus"][0]["flops"] == pytest.approx(6e12)
    # SNR at xs: means 1.1 and 2.1 (std 1/sqrt 2), seed std 0.1
    assert xs["snr"] == pytest.approx((1 / math.sqrt(2)) / 0.1)


def test_sizes_that_rank_recipes_differently_do_not_agree():
    values = {("a", "xs"): [1.0, 1.0, 1.1], ("b", "xs"): [2.0, 2.0, 2.1],
              ("a", "s"): [3.0, 3.0, 3.1], ("b", "s"): [2.0, 2.0, 2.1]}
    dec = metric_decisions(_by(values), ["a", "b"], ["xs", "s"], "ref.bits_per_byte")
    assert dec["agreement"]["agree"] is False
    assert dec["sizes"]["xs"]["winner"] == "a" and dec["sizes"]["s"]["winner"] == "b"


def test_report_from_cell_files_shows_decisions_snr_and_speed(tmp_path):
    """`assay ablate-report` works from result files alone: decisions, "no decision", SNR and tokens/s."""
    values = {("clean", "xs"): [1.0, 1.1, 1.2], ("raw", "xs"): [2.0, 2.1, 2.2], ("noisy", "xs"): [1.05, 1.6, 0.7]}
    for (recipe, size), vals in values.items():
        for seed, v in enumerate(vals):
            rec = _cell(recipe, size, seed, v, tps=1000.0 + seed)
            rec.update(params=1000, tokens=4096, steps=4,
                       evals=[{"step": 4, "tokens": 4096, "metrics": rec["metrics"]}],
                       loss_curve=[{"step": 4, "tokens": 4096, "loss": v}], train_seconds=4.0,
                       lineage={"recipe_hash": recipe, "manifest_fingerprint": "m", "tokenizer_hash": "t",
                                "code_version": "c", "config_hash": f"{recipe}{seed}"})
            folder = tmp_path / "cells" / recipe / size / f"seed-{seed}"
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(json.dumps(rec))
    report = build_report(str(tmp_path))
    dec = report["decisions"][0]
    assert dec["metric"] == "ref.bits_per_byte" and dec["sizes"]["xs"]["best"] == "clean"
    versus = {v["other"]: v["decided"] for v in dec["sizes"]["xs"]["versus"]}
    assert versus == {"raw": True, "noisy": False}
    md = (tmp_path / "report.md").read_text()
    assert "no decision" in md and "| ref.bits_per_byte | xs |" in md
    assert "1002" in md  # tokens/s of seed 2's cells
    assert os.path.isfile(tmp_path / "report.json")


def test_per_token_losses_are_not_decided_on_unless_primary():
    from assay.pipelines.ablate.decisions import decided_metrics

    metrics = ["mmlu.acc", "mmlu.prob_correct", "ref.bits_per_byte", "ref.loss", "train.loss"]
    assert decided_metrics(metrics, "ref.bits_per_byte") == ["ref.bits_per_byte", "mmlu.acc", "mmlu.prob_correct"]
    assert decided_metrics(metrics, "ref.loss")[0] == "ref.loss"
