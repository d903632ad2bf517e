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


@dataclass
class Difference:
    """mean(a) - mean(b) with its two-sided Welch t interval (unequal variances, Welch-Satterthwaite degrees of
    freedom). `decided`: the interval excludes 0, so the data support an order between the two."""

    diff: float
    low: float
    high: float
    df: float
    se: float

    @property
    def decided(self) -> bool:
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)


def welch_difference(a: list[float], b: list[float], confidence: float = 0.95) -> Difference:
    """The difference of the means of two seed samples and its Welch interval. Fewer than two values on a side:
    no interval (nan), so no decision. Both samples without spread: the interval is the difference itself."""
    from scipy import stats

    sa, sb = mean_ci(a), mean_ci(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Difference(diff, math.nan, math.nan, math.nan, math.nan)
    va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(diff, diff, diff, math.inf, 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Difference(diff, diff - half, diff + half, df, se)


@dataclass
class SignalNoise:
    """How well a metric separates recipes at one size (after Heineman et al. 2025, "Signal and Noise"):
    signal = sample standard deviation of the recipe means, noise = mean over recipes of the sample standard
    deviation over seeds, snr = signal / noise (inf when the seeds agree exactly, nan with fewer than two
    recipes or no recipe with two seeds)."""

    signal: float
    noise: float
    snr: float
    recipes: int


def signal_to_noise(groups: dict[str, list[float]]) -> SignalNoise:
    """SignalNoise of {recipe: per-seed values}; recipes without a value are left out."""
    sums = {k: mean_ci(v) for k, v in groups.items()}
    sums = {k: s for k, s in sums.items() if s.n}
    if len(sums) < 2:
        return SignalNoise(math.nan, math.nan, math.nan, len(sums))
    signal = mean_ci([s.mean for s in sums.values()]).std
    spreads = [s.std for s in sums.values() if s.n >= 2]
    if not spreads:
        return SignalNoise(signal, math.nan, math.nan, len(sums))
    noise = sum(spreads) / len(spreads)
    snr = signal / noise if noise > 0 else (math.inf if signal > 0 else math.nan)
    return SignalNoise(signal, noise, snr, len(sums))


def decide(groups: dict[str, list[float]], higher_better: bool, confidence: float = 0.95) -> dict:
    """The recipe decision of one metric at one size: the best recipe by mean, and for every other recipe the
    difference best - other with its Welch interval and whether it is decided (interval excludes 0). `winner`
    is the best recipe when every difference is decided, else None ("no decision")."""
    means = {k: mean_ci(v).mean for k, v in groups.items()}
    order = rank(means, higher_better)
    if not order:
        return {"best": None, "winner": None, "order": [], "versus": []}
    best = order[0]
    versus = []
    for other in order[1:]:
        d = welch_difference(groups[best], groups[other], confidence)
        versus.append({"other": other, "diff": d.diff, "low": d.low, "high": d.high, "df": d.df,
                       "decided": d.decided})
    winner = best if versus and all(v["decided"] for v in versus) else None
    return {"best": best, "winner": winner, "order": order, "versus": versus}
