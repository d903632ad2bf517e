"""Bounds a user or CI puts on a quality report (`assay evaluate --min-recall 0.85 ...`).

Each bound that is not met becomes one line saying what was measured against what was asked; the command
exits non-zero when there is any. A page the run lost without a trace always fails: silent loss is a bug.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from assay.pipelines.quality.metrics import EXACT_BIN, JACCARD_BINS, QualityReport, dedup_rate


@dataclass
class Gates:
    """The bounds a report must meet; None leaves a bound unchecked."""

    min_recall: float | None = None  # recall of the --keep categories (copies counted once)
    min_precision: float | None = None  # share of the kept pages that are of the --keep categories
    min_f1: float | None = None  # F1 of the two above
    max_kept: dict[str, float] = field(default_factory=dict)  # category -> largest kept share allowed
    min_near_dup_recall: float | None = None  # over pairs at Jaccard >= 0.8
    min_exact_dup_recall: float | None = None  # over exact-copy pairs
    max_low_similarity_merged: int | None = None  # pairs at Jaccard <= 0.3 that dedup merged
    #: on rated pages (rubric score >= EvalSettings.min_score is teaching)
    min_rubric_precision: float | None = None
    min_rubric_recall: float | None = None  # share of the rated teaching pages that are kept
    max_low_score_kept: float | None = None  # share of pages rated 0-1 kept
    max_ephemeral_kept: float | None = None  # share of pages rated ephemeral kept


def parse_max_kept(items: list[str]) -> dict[str, float]:
    """["spam=0.03", "nav=0.1"] -> {"spam": 0.03, "nav": 0.1}."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name or not 0.0 <= share <= 1.0:
            raise ValueError(f"--max-kept {item!r}: write CATEGORY=SHARE with SHARE in [0, 1], e.g. spam=0.03")
        out[name.strip()] = share
    return out


def check(report: QualityReport, gates: Gates) -> list[str]:
    failures: list[str] = []
    m = report.keep_metrics
    for name, bound in (("recall", gates.min_recall), ("precision", gates.min_precision), ("f1", gates.min_f1)):
        if bound is not None and m[name] < bound:
            failures.append(f"{name} {m[name]:.3f} < --min-{name} {bound}")
    for cat, bound in gates.max_kept.items():
        row = report.categories.get(cat)
        if row is None:
            failures.append(f"--max-kept {cat}: the corpus has no pages of category {cat!r} "
                            f"(categories: {', '.join(sorted(report.categories))})")
        elif row["kept_share"] > bound:
            failures.append(f"{cat} kept {row['kept_share']:.3f} ({row['kept']}/{row['pages']}) > --max-kept {bound}")
    if gates.min_near_dup_recall is not None:
        caught, eligible = dedup_rate(report, 0.8)
        rate = caught / eligible if eligible else None
        if rate is None:
            failures.append("--min-near-dup-recall: no near-duplicate pair at Jaccard >= 0.8 reached dedup")
        elif rate < gates.min_near_dup_recall:
            failures.append(f"near-duplicate recall (Jaccard >= 0.8) {rate:.3f} ({caught}/{eligible}) "
                            f"< {gates.min_near_dup_recall}")
    if gates.min_exact_dup_recall is not None:
        row = report.dedup[EXACT_BIN]
        if row["rate"] is None:
            failures.append("--min-exact-dup-recall: no exact-duplicate pair reached dedup")
        elif row["rate"] < gates.min_exact_dup_recall:
            failures.append(f"exact-duplicate recall {row['rate']:.3f} < {gates.min_exact_dup_recall}")
    if gates.max_low_similarity_merged is not None:
        low = JACCARD_BINS[0][0]
        merged = max(report.dedup[low]["caught"], report.merges.get(low, 0))  # constructed pairs, every merge
        if merged > gates.max_low_similarity_merged:
            failures.append(f"{merged} pairs at Jaccard <= 0.3 were merged by dedup "
                            f"(> {gates.max_low_similarity_merged})")
    rubric = report.rubric
    rubric_gates = (("rubric precision", rubric.get("precision"), gates.min_rubric_precision,
                     "--min-rubric-precision", 1),
                    ("rubric recall", rubric.get("recall"), gates.min_rubric_recall, "--min-rubric-recall", 1),
                    ("pages rated 0-1 kept", rubric.get("low_kept", {}).get("kept_share"), gates.max_low_score_kept,
                     "--max-low-score-kept", -1),
                    ("pages rated ephemeral kept", rubric.get("ephemeral_kept", {}).get("kept_share"),
                     gates.max_ephemeral_kept, "--max-ephemeral-kept", -1))
    for name, value, bound, flag, sign in rubric_gates:
        if bound is None:
            continue
        if value is None:
            failures.append(f"{flag}: the corpus has no rated pages of that kind "
                            "(rate pages on data/realweb/RUBRIC.md)")
        elif (value - bound) * sign < 0:
            failures.append(f"{name} {value:.3f} {'<' if sign > 0 else '>'} {flag} {bound}")
    if report.missing:
        failures.append(f"{len(report.missing)} labelled records have neither a kept row nor a ledger row "
                        f"(silent loss), e.g. {report.missing[:3]}")
    return failures
