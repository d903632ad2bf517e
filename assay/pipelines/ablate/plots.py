"""PNG plots of an ablation (matplotlib, Agg backend: no display needed): training loss curves, the
primary metric against training tokens, and the scaling plot (log error vs log parameters, a fitted line
per recipe). Each is written atomically."""
from __future__ import annotations

import io
import math

import numpy as np


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: str) -> None:
    from assay.groundwork.atomic import write_bytes_atomic

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(buf.getvalue(), path)


def _mean_band(series: list[list[tuple[float, float]]]):
    """Align per-seed (x, y) series on the x values they share: (x, mean, min, max)."""
    shared = sorted(set.intersection(*(set(x for x, _ in s) for s in series))) if series else []
    ys = np.array([[dict(s)[x] for x in shared] for s in series]) if shared else np.zeros((0, 0))
    if not shared:
        return [], [], [], []
    return shared, ys.mean(0), ys.min(0), ys.max(0)


def loss_curves(results_by: dict[tuple[str, str], list[dict]], recipes: list[str], sizes: list[str],
                path: str) -> None:
    """Training loss vs tokens, one panel per size: the mean over seeds, shaded between min and max."""
    plt, fig, axes = _figure(len(sizes))
    for ax, size in zip(axes, sizes):
        for recipe in recipes:
            runs = results_by.get((recipe, size), [])
            if not runs:
                continue
            x, mean, lo, hi = _mean_band([[(p["tokens"], p["loss"]) for p in r["loss_curve"]] for r in runs])
            if len(x):
                ax.plot(x, mean, label=f"{recipe} (n={len(runs)})")
                ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_title(f"training loss, size {size}")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("loss (nats/token)")
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def eval_vs_tokens(results_by: dict[tuple[str, str], list[dict]], recipes: list[str], sizes: list[str],
                   metric: str, path: str) -> None:
    """`metric` at each evaluated checkpoint vs tokens: mean over seeds with min-max bars."""
    plt, fig, axes = _figure(len(sizes))
    for ax, size in zip(axes, sizes):
        for recipe in recipes:
            runs = results_by.get((recipe, size), [])
            series = [[(e["tokens"], e["metrics"].get(metric, math.nan)) for e in r["evals"]] for r in runs]
            x, mean, lo, hi = _mean_band(series)
            if len(x):
                ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=recipe)
        ax.set_title(f"{metric}, size {size}")
        ax.set_xlabel("training tokens")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def scaling(points: dict[str, list[tuple[float, float, float, float]]], fits: dict, ylabel: str,
            path: str) -> None:
    """Log-log error vs parameters: per recipe the size means with CI bars and the fitted line.
    points[recipe] = [(params, error mean, ci low, ci high)]; fits[recipe] = ScalingFit or None."""
    plt, fig, axes = _figure(1)
    ax = axes[0]
    for recipe, pts in points.items():
        pts = sorted(p for p in pts if p[1] > 0)
        if not pts:
            continue
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        lo = np.array([p[1] - p[2] if not math.isnan(p[2]) else 0.0 for p in pts])
        hi = np.array([p[3] - p[1] if not math.isnan(p[3]) else 0.0 for p in pts])
        bars = ax.errorbar(x, y, yerr=[np.abs(lo), np.abs(hi)], fmt="o", capsize=3, label=recipe)
        fit = fits.get(recipe)
        if fit is not None:
            grid = np.geomspace(x.min() / 1.3, x.max() * 1.3, 20)
            ax.plot(grid, [fit.predict(g) for g in grid], "--", color=bars[0].get_color(),
                    label=f"{recipe} fit: slope {fit.slope:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(ylabel)
    ax.set_title("scaling: log error vs log parameters")
    ax.legend(fontsize=8)
    _save(plt, fig, path)
