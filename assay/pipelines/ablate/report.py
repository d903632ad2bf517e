"""The ablation report: report.json (machine-readable rows), report.md (tables and plots) and PNGs, built
from the cells' result files alone, so it can be rebuilt at any time (`assay ablate-report DIR`).

Every row (recipe x size x metric) carries its lineage: the recipe hash, the token-shard manifest
fingerprint, the tokenizer hash, the code version(s) and the config hash of each seed's cell.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
from typing import Any

from assay.groundwork.atomic import write_json_atomic, write_text_atomic
from assay.pipelines.ablate.decisions import cell_speeds, decided_metrics, metric_decisions
from assay.pipelines.ablate.lineage import LINEAGE_KEYS, short
from assay.pipelines.ablate.plan import higher_is_better
from assay.pipelines.ablate.runner import RESULT_FILE, STATUS_FILE
from assay.pipelines.ablate.stats import error_of, fit_scaling, mean_ci, rank, rank_agreement


class ReportError(ValueError):
    """The folder holds no finished cells; the message says what to run."""


def load_results(output: str) -> list[dict[str, Any]]:
    paths = sorted(p for p in glob.glob(os.path.join(output, "cells", "*", "*", "seed-*", RESULT_FILE))
                   if re.fullmatch(r"seed-\d+", os.path.basename(os.path.dirname(p))))  # not set-aside folders
    results = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
        rec["path"] = os.path.relpath(path, output)
        results.append(rec)
    return results


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _lineage(runs: list[dict]) -> dict[str, Any]:
    """Per lineage key the distinct values over the seeds (one for the data keys, one per seed for configs)."""
    out = {}
    for key in LINEAGE_KEYS:
        out[key] = sorted({r["lineage"][key] for r in runs})
    out["cells"] = [r["path"] for r in runs]
    return out


def build_report(output: str) -> dict[str, Any]:
    """Aggregate the cells of `output` into the report dict and write report.json, report.md and the plots."""
    from assay.pipelines.ablate import plots

    output = os.path.abspath(output)
    results = load_results(output)
    if not results:
        raise ReportError(f"no finished cells under {output}/cells; run `assay ablate PLAN --output {output}` first")
    plan = _read(os.path.join(output, "plan.json"))
    status = _read(os.path.join(output, STATUS_FILE))
    found_recipes = {r["cell"]["recipe"] for r in results}  # plan order, then recipes of other plan copies
    recipes = [r for r in plan.get("recipes", {}) if r in found_recipes]
    recipes += sorted(found_recipes - set(recipes))
    size_order = [s["name"] for s in plan.get("sizes", [])]
    found_sizes = {r["cell"]["size"] for r in results}
    sizes = [s for s in size_order if s in found_sizes] + sorted(found_sizes - set(size_order))
    by: dict[tuple[str, str], list[dict]] = {}
    for rec in results:
        by.setdefault((rec["cell"]["recipe"], rec["cell"]["size"]), []).append(rec)
    for runs in by.values():
        runs.sort(key=lambda r: r["cell"]["seed"])
    metrics = sorted({m for r in results for m in r["metrics"]})
    primary = (plan.get("eval", {}).get("primary") or
               next((f"{s}.bits_per_byte" for s in plan.get("eval", {}).get("sets", {})), None) or metrics[0])

    rows = []
    for (recipe, size), runs in sorted(by.items(), key=lambda kv: (recipes.index(kv[0][0]), sizes.index(kv[0][1]))):
        for metric in metrics:
            s = mean_ci([r["metrics"].get(metric, math.nan) for r in runs])
            rows.append({"recipe": recipe, "size": size, "metric": metric, "n": s.n, "mean": s.mean, "std": s.std,
                         "ci95_low": s.low, "ci95_high": s.high, "seeds": [r["cell"]["seed"] for r in runs],
                         "params": runs[0]["params"], "tokens": runs[0]["tokens"],
                         "lineage": _lineage(runs)})
    primary_rows = {(r["recipe"], r["size"]): r for r in rows if r["metric"] == primary}
    hib = higher_is_better(primary)
    rankings, separation = {}, {}
    for size in sizes:
        means = {rec: primary_rows[(rec, size)]["mean"] for rec in recipes if (rec, size) in primary_rows}
        order = rank(means, hib)
        rankings[size] = order
        separation[size] = [
            {"better": a, "worse": b, "cis_overlap": mean_ci_overlap(primary_rows[(a, size)], primary_rows[(b, size)])}
            for a, b in zip(order, order[1:])]
    agreement = rank_agreement(rankings)
    fits, points = {}, {}
    for recipe in recipes:
        pts = [(primary_rows[(recipe, s)]["params"],
                error_of(primary, primary_rows[(recipe, s)]["mean"], hib),
                error_of(primary, primary_rows[(recipe, s)]["ci95_high" if hib else "ci95_low"], hib),
                error_of(primary, primary_rows[(recipe, s)]["ci95_low" if hib else "ci95_high"], hib))
               for s in sizes if (recipe, s) in primary_rows]
        points[recipe] = pts
        fit = fit_scaling([p[0] for p in pts], [p[1] for p in pts])
        fits[recipe] = fit
    report = {
        "plan": plan.get("name", ""), "output": output, "primary_metric": primary, "higher_is_better": hib,
        "recipes": recipes, "sizes": sizes, "rows": rows, "rankings": rankings, "separation": separation,
        "ranking_agreement": agreement,
        "decisions": [metric_decisions(by, recipes, sizes, m) for m in decided_metrics(metrics, primary)],
        "cells": cell_speeds(by),
        "scaling": {r: (vars(f) if f else None) for r, f in fits.items()},
        "unavailable": status.get("unavailable", {}), "failed": status.get("failed", {}),
        "labels": status.get("labels", {}),
    }
    plots.loss_curves(by, recipes, sizes, os.path.join(output, "loss_curves.png"))
    plots.eval_vs_tokens(by, recipes, sizes, primary, os.path.join(output, "eval_vs_tokens.png"))
    ylabel = f"1 - {primary}" if hib else primary
    plots.scaling(points, fits, ylabel, os.path.join(output, "scaling.png"))
    write_json_atomic(report, os.path.join(output, "report.json"))
    write_text_atomic(render_markdown(report), os.path.join(output, "report.md"))
    return report


def mean_ci_overlap(a: dict, b: dict) -> bool:
    from assay.pipelines.ablate.stats import Summary

    sa = Summary(a["n"], a["mean"], a["std"], a["ci95_low"], a["ci95_high"])
    sb = Summary(b["n"], b["mean"], b["std"], b["ci95_low"], b["ci95_high"])
    return sa.overlaps(sb)


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _lineage_cells(lin: dict) -> str:
    return " | ".join(",".join(short(v) for v in lin[k]) for k in LINEAGE_KEYS)


def render_markdown(report: dict) -> str:
    primary = report["primary_metric"]
    direction = "higher is better" if report["higher_is_better"] else "lower is better"
    labels = report.get("labels", {})
    out = [f"# Ablation report: {report['plan']}", "",
           f"Primary metric: `{primary}` ({direction}); mean and 95% Student-t interval over seeds. "
           "Lineage columns: recipe hash, token-shard manifest fingerprint, tokenizer hash, code version, "
           "config hash (one per seed); full values and per-cell files in report.json.", ""]
    out += ["## Ranking", ""]
    for size, order in report["rankings"].items():
        seps = report["separation"][size]
        parts = [order[0]] if order else []
        for sep in seps:
            parts.append(("~ " if sep["cis_overlap"] else "> ") + sep["worse"])
        out.append(f"- size `{size}`: {' '.join(parts)}  (`>`: intervals do not overlap; `~`: they overlap)")
    agr = report["ranking_agreement"]
    taus = ", ".join(f"{s}: {t:.2f}" for s, t in agr["kendall_tau_vs_largest"].items())
    out += ["", f"Ranking {'agrees' if agr['agree'] else 'does NOT agree'} across sizes"
            + (f" (Kendall tau vs the largest size: {taus})" if taus else "") + ".", ""]
    out += render_decisions(report["decisions"])
    header = ("| recipe | size | params | tokens | n | mean | 95% CI | recipe hash | shards | tokenizer | code | "
              "configs |")
    rule = "|" + "---|" * 12
    out += [f"## `{primary}` per recipe and size", "", header, rule]
    for row in report["rows"]:
        if row["metric"] == primary:
            out.append(_row(row, labels))
    out += ["", "![scaling](scaling.png)", "", "## Scaling fits (log error = a + b log params, per recipe)", "",
            "| recipe | slope b | intercept a | sizes | R^2 |", "|---|---|---|---|---|"]
    for recipe, fit in report["scaling"].items():
        if fit:
            out.append(f"| {recipe} | {fit['slope']:.4f} | {fit['intercept']:.4f} | {fit['points']} | {fit['r2']:.3f} "
                       "|")
        else:
            out.append(f"| {recipe} | n/a | n/a | fewer than 2 sizes | n/a |")
    out += ["", "## Curves", "", "![loss curves](loss_curves.png)", "", "![eval vs tokens](eval_vs_tokens.png)", "",
            "## Every metric", "", header.replace("| recipe |", "| metric | recipe |"), rule + "---|"]
    for row in report["rows"]:
        out.append(f"| {row['metric']} " + _row(row, labels))
    out += render_speeds(report["cells"])
    if report["unavailable"]:
        out += ["", "## Recipes that could not run", ""]
        for where, reason in report["unavailable"].items():
            needs = labels.get(where.split("/")[0], {}).get("needs", "")
            out.append(f"- `{where}`: {reason}" + (f" — needs: {needs}" if needs else ""))
    if report["failed"]:
        out += ["", "## Failed cells (rerun `assay ablate` to retry)", ""]
        out += [f"- `{k}`: {v}" for k, v in report["failed"].items()]
    return "\n".join(out) + "\n"


def _num(v: float, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def render_decisions(decisions: list[dict]) -> list[str]:
    """The decision table: per metric and size, the SNR, the best recipe and its difference to each other
    recipe with the 95% Welch interval, "decided" or "no decision", and the compute the comparison cost."""
    out = ["## Decisions", "",
           "Per metric and size: SNR = std of the recipe means / mean of the recipes' seed std (Signal and Noise, "
           "Heineman et al. 2025); best recipe by mean; difference best - other with its 95% Welch interval: "
           "**decided** when the interval excludes 0, else **no decision**. Cost: CPU-hours (wall time x torch "
           "threads) and 6ND FLOPs of the cells compared (all seeds of both recipes). Per-token losses are left out "
           "(each recipe has its own tokenizer); ties are ordered by name.", "",
           "| metric | size | SNR | best | vs | best - other | 95% interval | decision | CPU-h | FLOPs |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    agreement = []
    for dec in decisions:
        for size, d in dec["sizes"].items():
            if not d["versus"]:
                out.append(f"| {dec['metric']} | {size} | {_num(d['snr'])} | {d['best']} | - | - | - | "
                           "one recipe: nothing to decide | - | - |")
            for v in d["versus"]:
                verdict = ("decided" if v["decided"] else "no decision")
                out.append(f"| {dec['metric']} | {size} | {_num(d['snr'])} | {d['best']} | {v['other']} | "
                           f"{_num(v['diff'], 4)} | [{_num(v['low'], 4)}, {_num(v['high'], 4)}] | {verdict} | "
                           f"{_num(v['cpu_hours'], 3)} | {v['flops']:.2e} |")
        agr = dec["agreement"]
        if len(dec["sizes"]) > 1:
            taus = ", ".join(f"{s}: {t:.2f}" for s, t in agr["kendall_tau_vs_largest"].items())
            winners = {s: d["winner"] for s, d in dec["sizes"].items()}
            agreement.append(f"- `{dec['metric']}`: sizes {'agree' if agr['agree'] else 'do NOT agree'} on the "
                             f"ranking ({'; '.join(' > '.join(o) for o in agr['orders'].values())})"
                             + (f", Kendall tau vs the largest: {taus}" if taus else "")
                             + "; decided winner per size: "
                             + ", ".join(f"{s} {w or 'none'}" for s, w in winners.items()))
    if agreement:
        out += ["", "Agreement across sizes (ranking by mean; the winner is named only where every comparison "
                "is decided):", ""] + agreement
    return out + [""]


def render_speeds(cells: list[dict]) -> list[str]:
    out = ["", "## Cells: speed and compute", "",
           "| recipe | size | seed | torch threads | train tokens/s | train s | wall s | CPU-h |",
           "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        out.append(f"| {c['recipe']} | {c['size']} | {c['seed']} | {c['torch_threads'] or 'n/a'} | "
                   f"{_num(c['tokens_per_second'], 0)} | {_num(c['train_seconds'], 1)} | "
                   f"{_num(c['wall_seconds'], 1)} | "
                   f"{_num(c['cpu_hours'], 4)} |")
    return out


def _row(row: dict, labels: dict) -> str:
    label = labels.get(row["recipe"], {}).get("label", "")
    name = row["recipe"] + (f" ({label})" if label else "")
    ci = f"[{_fmt(row['ci95_low'])}, {_fmt(row['ci95_high'])}]"
    return (f"| {name} | {row['size']} | {row['params']:,} | {row['tokens']:,} | {row['n']} | {_fmt(row['mean'])} | "
            f"{ci} | {_lineage_cells(row['lineage'])} |")
