"""Quality scoring on a hand-made corpus whose every number can be counted by eye: copies merge into one unit
for recall, false drops are grouped by stage and reason, dedup is judged only on eligible pairs, and bounds
fail when they should (a missing record is never silently fine)."""
import pytest

from assay.pipelines.quality.corpus import LabelledCorpus, LabelledPage
from assay.pipelines.quality.gates import Gates, check, parse_max_kept
from assay.pipelines.quality.metrics import EvalSettings, score
from assay.pipelines.quality.outcome import KEPT, Outcome


def _page(n, category, dup_of=None, jaccard=None, exact_of=None):
    return LabelledPage(record_id=f"r{n}", url=f"u{n}", category=category, source="s", language="en",
                        near_duplicate_of=dup_of, near_duplicate_jaccard=jaccard, exact_duplicate_of=exact_of)


CORPUS = LabelledCorpus("mem", [
    _page(1, "edu"), _page(2, "edu"), _page(3, "edu"), _page(4, "edu"),
    _page(5, "edu", dup_of="u1", jaccard=0.9),   # same content as u1: one unit with it
    _page(6, "edu", exact_of="u2"),              # exact copy of u2
    _page(7, "edu", dup_of="u3", jaccard=0.5),   # a different page: its own unit
    _page(8, "spam"), _page(9, "spam"), _page(10, "nav"),
])
OUTCOMES = {
    "r1": Outcome(KEPT), "r5": Outcome("fuzzy_dedup", "near_duplicate"),
    "r2": Outcome("exact_dedup", "exact_duplicate"), "r6": Outcome(KEPT),
    "r3": Outcome("gopher_repetition", "dup_line_frac"), "r7": Outcome("fuzzy_dedup", "near_duplicate"),
    "r4": Outcome("classify:edu_score", "below_threshold"),
    "r8": Outcome(KEPT), "r9": Outcome("langid", "language_score_low"), "r10": Outcome("gopher_quality", "x"),
}


def test_recall_counts_copies_once_and_precision_counts_kept_pages():
    report = score(CORPUS, OUTCOMES, EvalSettings(merge_jaccard=0.7))
    m = report.keep_metrics
    assert m["recall"] == round(2 / 5, 4)  # {u1,u5} {u2,u6} kept of 5 units; u3, u4 and u7 (its own unit) lost
    assert m["kept_pages"] == 3 and m["kept_in_keep_set"] == 2 and m["precision"] == round(2 / 3, 4)
    assert report.categories["spam"] == {"pages": 2, "kept": 1, "kept_share": 0.5,
                                         "dropped_by": {"langid": 1}}


def test_units_and_false_drops_by_stage_and_reason():
    report = score(CORPUS, OUTCOMES, EvalSettings(merge_jaccard=0.7))
    assert report.keep_metrics["units"] == 5  # u1+u5, u2+u6, u3, u4, u7
    assert report.keep_metrics["units_kept"] == 2
    drops = {(d["stage"], d["reason"]): d["count"] for d in report.false_drops}
    assert drops == {("gopher_repetition", "dup_line_frac"): 1, ("classify:edu_score", "below_threshold"): 1,
                     ("fuzzy_dedup", "near_duplicate"): 1}
    # a lower merge line makes u7 the same content as u3: one unit fewer, and the dedup drop is no loss
    merged = score(CORPUS, OUTCOMES, EvalSettings(merge_jaccard=0.5))
    assert merged.keep_metrics["units"] == 4
    assert ("fuzzy_dedup", "near_duplicate") not in {(d["stage"], d["reason"]) for d in merged.false_drops}


def test_dedup_bins_count_only_pairs_that_reached_dedup():
    report = score(CORPUS, OUTCOMES, EvalSettings())
    assert report.dedup["exact"] == {"pairs": 1, "eligible": 1, "caught": 1, "rate": 1.0}
    assert report.dedup["0.9-1.0"] == {"pairs": 1, "eligible": 1, "caught": 1, "rate": 1.0}
    # u3 was dropped by a filter, so the u3/u7 pair says nothing about dedup
    assert report.dedup["0.5-0.7"] == {"pairs": 1, "eligible": 0, "caught": 0, "rate": None}


def test_bounds_fail_when_unmet_and_a_missing_record_always_fails():
    report = score(CORPUS, OUTCOMES, EvalSettings())
    assert check(report, Gates(min_recall=0.3, max_kept={"spam": 0.5})) == []
    failures = check(report, Gates(min_recall=0.9, min_precision=0.9, max_kept={"spam": 0.1}))
    assert len(failures) == 3 and any("spam" in f for f in failures)
    partial = dict(OUTCOMES)
    del partial["r10"]
    assert any("r10" in f or "missing" in f for f in check(score(CORPUS, partial, EvalSettings()), Gates()))
    assert parse_max_kept(["spam=0.03", "nav=0.1"]) == {"spam": 0.03, "nav": 0.1}
    with pytest.raises(ValueError):
        parse_max_kept(["spam"])


def test_every_merge_is_binned_by_its_measured_jaccard_and_a_low_one_fails_the_bound():
    merges = [("r5", "r1", 0.91), ("r7", "r3", 0.22)]
    report = score(CORPUS, OUTCOMES, EvalSettings(), merges)
    assert report.merges["0.9-1.0"] == 1 and report.merges["<=0.3"] == 1 and sum(report.merges.values()) == 2
    assert report.least_similar_merges[0] == {"id": "r7", "url": "u7", "survivor_url": "u3", "jaccard": 0.22}
    assert any("Jaccard <= 0.3" in f for f in check(report, Gates(max_low_similarity_merged=0)))
    assert not any("Jaccard <= 0.3" in f for f in check(score(CORPUS, OUTCOMES, EvalSettings(), merges[:1]),
                                                       Gates(max_low_similarity_merged=0)))


def test_read_merges_measures_each_dropped_page_against_its_kept_representative(tmp_path):
    """A real fuzzy-dedup run: the ledger's near_duplicate rows are measured against the page dedup kept."""
    import json

    from assay.pipelines.curate.config import CurateConfig
    from assay.pipelines.curate.job import run_curation
    from assay.pipelines.quality.outcome import read_merges

    words = ("the cache keeps a copy of each response and serves it again until it expires, which saves the "
             "origin server from doing the same work twice for every client that asks ").split()
    base = " ".join(words * 12)
    edited = base.replace("client", "user", 3)
    other = " ".join(reversed(words * 12))
    (tmp_path / "in.jsonl").write_text("\n".join(
        json.dumps({"id": i, "text": t}) for i, t in (("a", base), ("b", edited), ("c", other))) + "\n")
    cfg = CurateConfig()
    cfg.input.paths = [str(tmp_path / "in.jsonl")]
    cfg.stages = ["dedup"]
    cfg.classifiers = []
    cfg.dedup.exact = False
    run_curation(cfg, output=str(tmp_path / "excerpts"))
    with pytest.raises(ValueError, match="excerpts of the dropped pages.*--ledger-full-text"):
        read_merges(str(tmp_path / "excerpts"))  # a default ledger cuts the text: measuring it would be wrong
    cfg.output.ledger_full_text = True
    run_curation(cfg, output=str(tmp_path / "run"))
    merges = read_merges(str(tmp_path / "run"))
    assert len(merges) == 1
    dropped, kept, value = merges[0]
    assert {dropped, kept} == {"a", "b"} and value > 0.8
