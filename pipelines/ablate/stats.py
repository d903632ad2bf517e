"""Statistics of an ablation: mean and Student-t confidence interval over seeds, per-recipe scaling fits
(least squares of log error on log parameters), and rankings with their agreement across sizes."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1)
    low: float  # confidence interval; nan when n < 2
    high: float

    def overlaps(self, other: "Summary") -> bool:
        if any(math.isnan(v) for v in (self.low, self.high, other.low, other.high)):
            return True
        return self.low <= other.high and other.low <= self.high


def mean_ci(values: list[float], confidence: float = 0.95) -> Summary:
    """Mean and the two-sided Student-t interval of the mean (the seeds are the samples)."""
    from scipy import stats

    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(vals) / n
    if n < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass
class ScalingFit:
    """log(error) = intercept + slope * log(params), fitted on the per-size means."""

    slope: float
    intercept: float
    points: int
    r2: float

    def predict(self, params: float) -> float:
        return math.exp(self.intercept + self.slope * math.log(params))


def fit_scaling(params: list[float], errors: list[float]) -> ScalingFit | None:
    """Least-squares line through (log params, log error); None with fewer than two distinct sizes or a
    non-positive error (no logarithm)."""
    import numpy as np

    pts = [(p, e) for p, e in zip(params, errors) if p > 0 and e > 0 and not math.isnan(e)]
    if len({p for p, _ in pts}) < 2:
        return None
    x = np.log([p for p, _ in pts])
    y = np.log([e for _, e in pts])
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (intercept + slope * x)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    return ScalingFit(float(slope), float(intercept), len(pts), 1.0 - residual / total if total > 0 else 1.0)


def error_of(metric: str, value: float, higher_better: bool) -> float:
    """The quantity plotted as error: the value itself for losses, 1 - value for accuracies."""
    return 1.0 - value if higher_better else value


def rank(means: dict[str, float], higher_better: bool) -> list[str]:
    """Recipes best first (ties broken by name, so the order is stable)."""
    usable = {k: v for k, v in means.items() if not math.isnan(v)}
    return sorted(usable, key=lambda k: (-usable[k] if higher_better else usable[k], k))


def rank_agreement(rankings: dict[str, list[str]]) -> dict:
    """Whether every size orders the recipes (present at all sizes) the same, and Kendall's tau of each size
    against the largest."""
    from scipy.stats import kendalltau

    sizes = list(rankings)
    common = [r for r in rankings[sizes[-1]] if all(r in rankings[s] for s in sizes)] if sizes else []
    orders = {s: [r for r in rankings[s] if r in common] for s in sizes}
    agree = len({tuple(o) for o in orders.values()}) <= 1
    taus = {}
    if len(common) >= 2:
        ref = orders[sizes[-1]]
        for s in sizes[:-1]:
            tau = kendalltau([ref.index(r) for r in common], [orders[s].index(r) for r in common]).statistic
            taus[s] = float(tau)
    return {"agree": agree, "recipes": common, "kendall_tau_vs_largest": taus, "orders": orders}
