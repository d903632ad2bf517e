"""Rated pages: `assay evaluate` judges a run by each page's rubric rating, and the committed ratings are sound."""
import gzip
import json
import os
import sys
from pathlib import Path

import pytest

from assay.pipelines.quality.corpus import RATINGS, LabelledCorpus, LabelledPage, load_corpus
from assay.pipelines.quality.gates import Gates, check
from assay.pipelines.quality.metrics import EvalSettings, score
from assay.pipelines.quality.outcome import KEPT, Outcome
from assay.pipelines.quality.report import to_markdown

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def _page(i: int, edu: int | None, durable: str | None, category: str, source: str = "s1") -> LabelledPage:
    return LabelledPage(record_id=f"r{i}", url=f"https://x.invalid/{i}", category=category, source=source,
                        language="en", edu_score=edu, durable=durable)


def _corpus():
    pages = [_page(0, 4, "durable", "explainer"), _page(1, 3, "durable", "explainer", "s2"),
             _page(2, 5, "durable", "explainer", "s2"), _page(3, 0, "ephemeral", "ephemeral"),
             _page(4, 1, "ephemeral", "ephemeral"), _page(5, 0, "durable", "commercial"),
             _page(6, 2, "durable", "opinion"), _page(7, None, None, "unrated")]
    kept = {"r0", "r1", "r3", "r6", "r7"}
    outcomes = {p.record_id: Outcome(KEPT) if p.record_id in kept else Outcome("classify:edu_score", "below")
                for p in pages}
    return LabelledCorpus("/nowhere", pages), outcomes


def test_rated_pages_are_judged_by_their_rating():
    corpus, outcomes = _corpus()
    r = score(corpus, outcomes, EvalSettings(keep=("explainer",), min_score=3)).rubric
    assert (r["rated"], r["teaching"], r["kept"], r["kept_teaching"]) == (7, 3, 4, 2)
    assert r["precision"] == 0.5 and r["recall"] == round(2 / 3, 4)
    assert r["low_kept"] == {"pages": 3, "kept": 1, "kept_share": round(1 / 3, 4)}
    assert r["ephemeral_kept"]["kept"] == 1 and r["ephemeral_kept"]["pages"] == 2
    assert r["by_score"]["5"]["kept"] == 0 and r["by_score"]["4"]["kept_share"] == 1.0
    assert r["by_source"]["s2"] == {"pages": 2, "teaching": 2, "kept": 1, "precision": 1.0, "recall": 0.5,
                                    "low_kept_share": None}
    # the threshold moves what counts as teaching
    assert score(corpus, outcomes, EvalSettings(min_score=2)).rubric["kept_teaching"] == 3


def test_rubric_gates_and_report():
    corpus, outcomes = _corpus()
    report = score(corpus, outcomes, EvalSettings(keep=("explainer",)))
    failures = check(report, Gates(min_rubric_precision=0.7, min_rubric_recall=0.6, max_low_score_kept=0.05,
                                   max_ephemeral_kept=0.6))
    assert failures == ["rubric precision 0.500 < --min-rubric-precision 0.7",
                        "pages rated 0-1 kept 0.333 > --max-low-score-kept 0.05"]
    md = to_markdown(report, failures)
    assert "## Rated pages (rubric score >= 3 is teaching)" in md and "| s2 | 2 | 2 | 1 | 1.000 | 0.500 | - |" in md
    unrated = LabelledCorpus("/nowhere", [_page(0, None, None, "edu")])
    report = score(unrated, {"r0": Outcome(KEPT)}, EvalSettings())
    assert report.rubric == {} and "Rated pages" not in to_markdown(report)
    assert "no rated pages" in check(report, Gates(min_rubric_recall=0.5))[0]


def test_ratings_beside_a_manifest_join_by_record_id(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(
        "".join(json.dumps({"record_id": f"r{i}", "url": f"u{i}", "category": "edu"}) + "\n" for i in range(2)))
    (tmp_path / "a.warc.gz").write_bytes(b"")
    rows = [{"record_id": "r0", "edu": 4, "durable": "durable", "category": "explainer", "rerate": False},
            {"record_id": "r0", "edu": 3, "durable": "durable", "category": "explainer", "rerate": True}]
    (tmp_path / RATINGS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    pages = {p.record_id: p for p in load_corpus(str(tmp_path)).pages}
    assert (pages["r0"].edu_score, pages["r0"].durable, pages["r1"].edu_score) == (4, "durable", None)
    (tmp_path / RATINGS).write_text(json.dumps({"record_id": "zz", "edu": 1, "durable": "durable"}) + "\n")
    with pytest.raises(ValueError, match="name no page"):
        load_corpus(str(tmp_path))
    (tmp_path / RATINGS).write_text(json.dumps({"record_id": "r0", "edu": 7, "durable": "durable"}) + "\n")
    with pytest.raises(ValueError, match="edu 0-5"):
        load_corpus(str(tmp_path))


def test_merging_raters_files_checks_lines_and_measures_blind_agreement(tmp_path):
    from build_realweb_corpus import merge_ratings, refuse_reserved

    batches = tmp_path / "batches"
    batches.mkdir()
    with gzip.open(batches / "train-0.jsonl.gz", "wt") as fh:
        for i in range(4):
            fh.write(json.dumps({"record_id": f"r{i}", "sha256": f"h{i}", "text": "t"}) + "\n")
    ratings = tmp_path / "ratings"
    ratings.mkdir()

    def line(i, edu, rerate=False, category="explainer"):
        return json.dumps({"record_id": f"r{i}", "edu": edu, "durable": "durable", "category": category,
                           "note": "n", "rater": "a", "rerate": rerate}) + "\n"

    # a rater's appended correction replaces their earlier line for the same page
    (ratings / "a.jsonl").write_text(line(0, 4) + line(1, 0) + line(2, 3) + line(3, 2) + line(1, 1))
    (ratings / "b.jsonl").write_text(line(0, 4, True) + line(1, 2, True) + line(2, 0, True))
    out = tmp_path / "labels.jsonl"
    agreement = merge_ratings(ratings, [batches], out)
    assert agreement["pairs"] == 3 and agreement["edu_exact"] == round(1 / 3, 3)
    assert agreement["edu_within_one"] == round(2 / 3, 3) and agreement["edu_ge3_same_side"] == round(2 / 3, 3)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    first = {r["record_id"]: r for r in rows if not r["rerate"]}
    assert first["r1"]["edu"] == 1 and first["r3"]["sha256"] == "h3" and len(rows) == 7
    (ratings / "b.jsonl").write_text(line(0, 9))
    with pytest.raises(ValueError, match="edu must be 0-5"):
        merge_ratings(ratings, [batches], out)
    (ratings / "b.jsonl").write_text(line(0, 2))
    with pytest.raises(ValueError, match="another file of the same pass"):
        merge_ratings(ratings, [batches], out)
    with pytest.raises(RuntimeError, match="reserved"):
        refuse_reserved(["openstax/osbooks-physics"])


def test_the_committed_ratings_are_complete_and_agree_with_their_blind_re_ratings():
    """Every rated page has one first rating on the rubric's scale; the blind 10% agrees as docs/quality.md says."""
    rows = [json.loads(x) for x in (REPO / "data" / "realweb" / "labels.jsonl").read_text().splitlines()]
    first = {r["record_id"]: r for r in rows if not r["rerate"]}
    again = [r for r in rows if r["rerate"]]
    assert len(first) == len([r for r in rows if not r["rerate"]]) >= 2000
    assert all(r["edu"] in range(6) and r["durable"] in ("durable", "ephemeral") and r["sha256"] for r in rows)
    assert len(again) >= 0.1 * len(first)
    within = sum(abs(first[r["record_id"]]["edu"] - r["edu"]) <= 1 for r in again) / len(again)
    assert within >= 0.95
    assert os.path.isfile(REPO / "data" / "realweb" / "RUBRIC.md")
