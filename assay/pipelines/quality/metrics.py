"""Score a run against a labelled corpus: keep rates, precision/recall/F1, false drops, dedup recall.

Recall counts distinct content once: a page and its copies at or above `merge_jaccard` (exact copies
included) are one unit, kept when any member is kept, so dedup dropping the second copy is not a false drop.
Copies below `merge_jaccard` are distinct pages and count on their own. Dedup is judged only on pairs whose
two pages both reached the dedup step (a filter that dropped one of them says nothing about dedup).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from assay.classifiers.config import POSITIVE_AT
from assay.curation.dedup import EXACT_DEDUP, FUZZY_DEDUP
from assay.pipelines.quality.corpus import LabelledCorpus, LabelledPage
from assay.pipelines.quality.outcome import Outcome

DEDUP_STAGES = (EXACT_DEDUP, FUZZY_DEDUP)
#: (label, low, high): a pair falls in the bin when low <= jaccard < high; exact copies have their own bin
JACCARD_BINS = [("<=0.3", 0.0, 0.3000001), ("0.3-0.5", 0.3000001, 0.5), ("0.5-0.7", 0.5, 0.7),
                ("0.7-0.8", 0.7, 0.8), ("0.8-0.9", 0.8, 0.9), ("0.9-1.0", 0.9, 1.0000001)]
EXACT_BIN = "exact"
MISSING = Outcome("missing", "no kept row and no ledger row for this record")
MAX_EXAMPLES = 5  # example pages listed per false-drop reason and least similar merges shown in the report


@dataclass
class EvalSettings:
    """What `assay evaluate` counts as kept-as-meant, as one page, and as teaching."""

    keep: tuple[str, ...] = ("edu",)  # the categories the config means to keep
    #: copies at or above this are the same content: the default MinHash dedup (14 bands x 8 rows) merges pairs
    #: from about 0.72 (its S-curve's midpoint), so pairs above 0.7 are the ones a dedup step exists to merge
    merge_jaccard: float = 0.7
    #: a rated page counts as teaching at or above this rubric score: FineWeb-Edu's cut, as the classifiers use it
    min_score: int = int(POSITIVE_AT)


@dataclass
class QualityReport:
    corpus: str
    settings: dict
    categories: dict = field(default_factory=dict)  # category -> {pages, kept, kept_share, dropped_by}
    keep_metrics: dict = field(default_factory=dict)  # precision, recall, f1, units, units_kept, kept_pages
    false_drops: list = field(default_factory=list)  # [{stage, reason, count, examples: [{id, url, source}]}]
    dedup: dict = field(default_factory=dict)  # bin -> {pairs, eligible, caught, rate}
    #: every merge the run's fuzzy dedup made, by the measured Jaccard of the merged pair: bin -> count, and
    #: the least similar merges as examples (a merge at <= 0.3 is a wrong one)
    merges: dict = field(default_factory=dict)
    least_similar_merges: list = field(default_factory=list)  # [{id, url, survivor_url, jaccard}]
    #: on rated pages only (empty when none is rated): precision / recall of the kept set for rubric score >=
    #: min_score, keep rate per score, per durability, per category and per source
    rubric: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)  # record ids with no outcome at all (silent loss)
    unlabelled: int = 0  # outcomes whose id is not in the manifest

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _root(page: LabelledPage, by_url: dict[str, LabelledPage], merge: float) -> str:
    """The url of the unit a page belongs to: follow copy -> original links while the copy is close enough."""
    seen = set()
    while page.duplicate_of and (page.jaccard or 0.0) >= merge and page.duplicate_of in by_url:
        if page.url in seen:  # a cycle in the manifest: stop rather than loop
            break
        seen.add(page.url)
        page = by_url[page.duplicate_of]
    return page.url


def _bin_of(page: LabelledPage) -> str | None:
    if page.exact_duplicate_of:
        return EXACT_BIN
    if page.near_duplicate_of is None or page.near_duplicate_jaccard is None:
        return None
    return jaccard_bin(page.near_duplicate_jaccard)


def jaccard_bin(value: float) -> str:
    for label, low, high in JACCARD_BINS:
        if low <= value < high:
            return label
    return JACCARD_BINS[-1][0]


def score(corpus: LabelledCorpus, outcomes: dict[str, Outcome], settings: EvalSettings,
          merges: list[tuple[str, str, float]] | None = None) -> QualityReport:
    """`merges`: (dropped id, surviving id, Jaccard) of every fuzzy-dedup merge (outcome.read_merges)."""
    by_url = corpus.by_url()
    outcome_of = {p.url: outcomes.get(p.record_id, MISSING) for p in corpus.pages}
    report = QualityReport(corpus=corpus.directory, settings={"keep": list(settings.keep),
                                                             "merge_jaccard": settings.merge_jaccard})
    labelled_ids = {p.record_id for p in corpus.pages}
    report.unlabelled = sum(1 for rid in outcomes if rid not in labelled_ids)
    report.missing = [p.record_id for p in corpus.pages if p.record_id not in outcomes]

    # per category
    per_cat: dict[str, dict] = {}
    for page in corpus.pages:
        row = per_cat.setdefault(page.category, {"pages": 0, "kept": 0, "dropped_by": Counter()})
        row["pages"] += 1
        out = outcome_of[page.url]
        if out.kept:
            row["kept"] += 1
        else:
            row["dropped_by"][out.stage] += 1
    for cat, row in sorted(per_cat.items()):
        report.categories[cat] = {"pages": row["pages"], "kept": row["kept"],
                                  "kept_share": round(row["kept"] / row["pages"], 4),
                                  "dropped_by": dict(row["dropped_by"].most_common())}

    # precision / recall / F1 of the kept set for the categories meant to be kept
    keep = set(settings.keep)
    kept_pages = [p for p in corpus.pages if outcome_of[p.url].kept]
    kept_good = sum(1 for p in kept_pages if p.category in keep)
    units: dict[str, list[LabelledPage]] = defaultdict(list)
    for page in corpus.pages:
        if page.category in keep:
            units[_root(page, by_url, settings.merge_jaccard)].append(page)
    units_kept = sum(1 for members in units.values() if any(outcome_of[m.url].kept for m in members))
    precision = kept_good / len(kept_pages) if kept_pages else 0.0
    recall = units_kept / len(units) if units else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    report.keep_metrics = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                           "kept_pages": len(kept_pages), "kept_in_keep_set": kept_good,
                           "units": len(units), "units_kept": units_kept}

    report.rubric = rubric_metrics(corpus.pages, outcome_of, settings.min_score)

    # every false drop, grouped by the stage and reason that dropped the unit's original page
    groups: dict[tuple[str, str], list[LabelledPage]] = defaultdict(list)
    for root, members in units.items():
        if any(outcome_of[m.url].kept for m in members):
            continue
        first = by_url.get(root, members[0])
        out = outcome_of[first.url]
        groups[(out.stage, out.reason)].append(first)
    for (stage, reason), pages in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        report.false_drops.append({
            "stage": stage, "reason": reason, "count": len(pages),
            "examples": [{"id": p.record_id, "url": p.url, "source": p.source} for p in pages[:MAX_EXAMPLES]],
            "ids": [p.record_id for p in pages]})

    # dedup recall per Jaccard bin
    bins = {label: {"pairs": 0, "eligible": 0, "caught": 0} for label, _, _ in JACCARD_BINS}
    bins[EXACT_BIN] = {"pairs": 0, "eligible": 0, "caught": 0}
    for page in corpus.pages:
        label = _bin_of(page)
        if label is None or page.duplicate_of not in by_url:
            continue
        pair = (outcome_of[page.url], outcome_of[page.duplicate_of])
        row = bins[label]
        row["pairs"] += 1
        if all(o.kept or o.stage in DEDUP_STAGES for o in pair):
            row["eligible"] += 1
            if any(o.stage in DEDUP_STAGES for o in pair):
                row["caught"] += 1
    for row in bins.values():
        row["rate"] = round(row["caught"] / row["eligible"], 4) if row["eligible"] else None
    report.dedup = bins

    # every merge the run made, by how similar the merged pages really are
    url_of = {p.record_id: p.url for p in corpus.pages}
    report.merges = {label: 0 for label, _, _ in JACCARD_BINS}
    for _, _, value in merges or []:
        report.merges[jaccard_bin(value)] += 1
    report.least_similar_merges = [{"id": rid, "url": url_of.get(rid, ""), "survivor_url": url_of.get(rep, ""),
                                    "jaccard": value}
                                   for rid, rep, value in sorted(merges or [], key=lambda m: m[2])[:MAX_EXAMPLES]]
    return report


def _share(pages, outcome_of) -> dict:
    kept = sum(1 for p in pages if outcome_of[p.url].kept)
    return {"pages": len(pages), "kept": kept, "kept_share": round(kept / len(pages), 4) if pages else None}


def rubric_metrics(pages: list[LabelledPage], outcome_of: dict[str, Outcome], min_score: int) -> dict:
    """What the run kept of the rated pages, judged by their ratings rather than their source's category."""
    rated = [p for p in pages if p.edu_score is not None]
    if not rated:
        return {}
    good = [p for p in rated if p.edu_score >= min_score]
    kept = [p for p in rated if outcome_of[p.url].kept]
    kept_good = sum(1 for p in kept if p.edu_score >= min_score)
    precision = kept_good / len(kept) if kept else 0.0
    recall = kept_good / len(good) if good else 0.0
    out = {"min_score": min_score, "rated": len(rated), "teaching": len(good), "kept": len(kept),
           "kept_teaching": kept_good, "precision": round(precision, 4), "recall": round(recall, 4),
           "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
           "base_rate": round(len(good) / len(rated), 4),
           "by_score": {str(s): _share([p for p in rated if p.edu_score == s], outcome_of) for s in range(6)},
           "low_kept": _share([p for p in rated if p.edu_score <= 1], outcome_of),
           "ephemeral_kept": _share([p for p in rated if p.durable == "ephemeral"], outcome_of),
           "by_category": {c: _share([p for p in rated if p.category == c], outcome_of)
                           for c in sorted({p.category for p in rated})},
           "by_source": {}}
    for source in sorted({p.source for p in rated}):
        mine = [p for p in rated if p.source == source]
        mine_good = [p for p in mine if p.edu_score >= min_score]
        mine_kept = [p for p in mine if outcome_of[p.url].kept]
        hit = sum(1 for p in mine_kept if p.edu_score >= min_score)
        out["by_source"][source] = {
            "pages": len(mine), "teaching": len(mine_good), "kept": len(mine_kept),
            "precision": round(hit / len(mine_kept), 4) if mine_kept else None,
            "recall": round(hit / len(mine_good), 4) if mine_good else None,
            "low_kept_share": _share([p for p in mine if p.edu_score <= 1], outcome_of)["kept_share"]}
    return out


def dedup_rate(report: QualityReport, low: float) -> tuple[int, int]:
    """(caught, eligible) over the near-duplicate bins at or above `low`, exact copies excluded."""
    caught = eligible = 0
    for label, lo, _ in JACCARD_BINS:
        if lo >= low - 1e-9:
            caught += report.dedup[label]["caught"]
            eligible += report.dedup[label]["eligible"]
    return caught, eligible
