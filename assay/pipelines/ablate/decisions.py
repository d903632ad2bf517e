"""The data decisions an ablation supports, per metric: how well the metric separates recipes at each size
(signal-to-noise ratio), which recipe is best and by how much against each other one (difference of means with
its 95% Welch interval; "no decision" where the interval covers 0), whether the sizes rank the recipes the same
way, and what each decision cost (CPU-hours of its cells, 6ND FLOPs). Built from the cells' result files only.
"""
from __future__ import annotations

import math
from typing import Any

from assay.pipelines.ablate.plan import higher_is_better
from assay.pipelines.ablate.stats import decide, rank, rank_agreement, signal_to_noise

#: metrics comparable across recipes whose tokenizers differ (each recipe's mix trains its own): bits per byte and
#: cloze task scores. Per-token losses (SET.loss, train.loss) are not; they are decided on only as the primary.
COMPARABLE = ("bits_per_byte", "acc", "acc_norm", "prob_correct")


def decided_metrics(metrics: list[str], primary: str) -> list[str]:
    """The metrics the report decides on: the primary first, then every comparable one."""
    return [primary] + [m for m in metrics if m != primary and m.rsplit(".", 1)[-1] in COMPARABLE]


def cell_cost(result: dict) -> dict[str, float]:
    """{cpu_hours, flops, tokens_per_second} of one finished cell: its wall time (training and evaluation) times
    the torch threads it ran with; nan where an older result did not record them."""
    threads = result.get("torch_threads")
    wall = result.get("wall_seconds")
    cpu_hours = wall * threads / 3600.0 if wall is not None and threads else math.nan
    tps = result.get("tokens_per_second")
    return {"cpu_hours": cpu_hours, "flops": float(result.get("flops", math.nan)),
            "tokens_per_second": float(tps) if tps is not None else math.nan}


def metric_decisions(by: dict[tuple[str, str], list[dict]], recipes: list[str], sizes: list[str],
                     metric: str) -> dict[str, Any]:
    """{metric, higher_is_better, sizes: {size: {snr, signal, noise, best, winner, versus, cpu_hours, flops}},
    agreement} of one metric. A decision's cost is the cost of every cell it compares: all seeds of the best
    recipe and of the other one at that size."""
    hib = higher_is_better(metric)
    per_size, rankings = {}, {}
    for size in sizes:
        groups = {r: [run["metrics"].get(metric, math.nan) for run in by[(r, size)]]
                  for r in recipes if (r, size) in by}
        groups = {r: v for r, v in groups.items() if any(not math.isnan(x) for x in v)}
        if not groups:
            continue
        sn = signal_to_noise(groups)
        d = decide(groups, hib)
        costs = {r: [cell_cost(run) for run in by[(r, size)]] for r in groups}
        for v in d["versus"]:
            cells = costs[d["best"]] + costs[v["other"]]
            v["cpu_hours"] = sum(c["cpu_hours"] for c in cells)
            v["flops"] = sum(c["flops"] for c in cells)
        everything = [c for cs in costs.values() for c in cs]
        per_size[size] = {"snr": sn.snr, "signal": sn.signal, "noise": sn.noise, "best": d["best"],
                          "winner": d["winner"], "versus": d["versus"],
                          "cpu_hours": sum(c["cpu_hours"] for c in everything),
                          "flops": sum(c["flops"] for c in everything)}
        rankings[size] = rank({r: sum(v) / len(v) for r, v in groups.items()}, hib)
    return {"metric": metric, "higher_is_better": hib, "sizes": per_size, "agreement": rank_agreement(rankings)}


def cell_speeds(by: dict[tuple[str, str], list[dict]]) -> list[dict]:
    """One row per finished cell: its recipe, size, seed, threads, training tokens per second, wall seconds
    and CPU-hours."""
    rows = []
    for (recipe, size), runs in by.items():
        for run in runs:
            cost = cell_cost(run)
            rows.append({"recipe": recipe, "size": size, "seed": run["cell"]["seed"],
                         "torch_threads": run.get("torch_threads"), "tokens_per_second": cost["tokens_per_second"],
                         "train_seconds": run.get("train_seconds"), "wall_seconds": run.get("wall_seconds"),
                         "cpu_hours": cost["cpu_hours"]})
    return rows
