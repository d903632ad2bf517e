"""The committed quality eval corpus: labelled, split by source from train, free of reserved sources, and
its manifest, duplicates and NOTICE agree with its WARC files."""
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "data" / "quality" / "eval"
sys.path.insert(0, str(ROOT / "scripts"))

import build_quality_corpus as corpus  # noqa: E402

CATEGORIES = {"edu", "nav", "ephemeral", "spam", "mailing_list", "chatter", "non_english"}


@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    with open(EVAL / "manifest.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def payloads() -> dict[str, bytes]:
    from warcio.archiveiterator import ArchiveIterator

    out = {}
    for path in sorted(EVAL.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type == "response":
                    out[record.rec_headers.get_header("WARC-Record-ID")] = record.content_stream().read()
    return out


def test_every_manifest_row_is_one_warc_record_and_every_category_is_there(manifest, payloads):
    assert {r["record_id"] for r in manifest} == set(payloads)
    assert len({r["url"] for r in manifest}) == len(manifest)
    counts = Counter(r["category"] for r in manifest)
    assert set(counts) == CATEGORIES
    assert counts["edu"] >= 250 and min(counts.values()) >= 30, counts
    assert all(r["split"] == "eval" for r in manifest)


def test_eval_sources_are_not_train_sources_and_reserved_sources_are_never_read(manifest):
    packages = corpus.source_packages()
    train = {p for p, (split, _) in packages.items() if split == "train"}
    used = {r["source_package"] for r in manifest}
    assert not used & train
    for row in manifest:
        assert not any(reserved in row["source_path"] or reserved in row["url"] for reserved in corpus.RESERVED), row
    mails = [r for r in manifest if r["source_package"] == corpus.sample.SPAM_SOURCE]
    assert mails and all(corpus._mail_split(Path(r["source_path"].split(":/", 1)[1]), corpus.CorpusConfig())
                         == "eval" for r in mails)


def test_a_reserved_source_stops_the_build_before_anything_is_read():
    corpus.refuse_reserved([src.package for src in corpus.SOURCES] + ["spam-1", "easy-ham-1"])
    for name in ("rust-doc", "r-doc-html", "spam-2"):
        with pytest.raises(RuntimeError, match="reserved"):
            corpus.refuse_reserved(["python3.11-doc", name])


def test_exact_duplicates_are_byte_identical_and_near_duplicates_span_the_jaccard_bins(manifest, payloads):
    by_url = {r["url"]: r for r in manifest}
    exact = [r for r in manifest if r["exact_duplicate_of"]]
    assert len(exact) >= 15
    for row in exact:
        original = by_url[row["exact_duplicate_of"]]
        assert payloads[row["record_id"]] == payloads[original["record_id"]]
    near = [r for r in manifest if r["near_duplicate_of"]]
    assert all(r["near_duplicate_of"] in by_url for r in near)
    jaccards = [r["near_duplicate_jaccard"] for r in near]
    assert min(jaccards) < 0.6 and max(jaccards) > 0.9
    for row in near:
        assert hashlib.sha256(payloads[row["record_id"]]).digest() != \
            hashlib.sha256(payloads[by_url[row["near_duplicate_of"]]["record_id"]]).digest()


def test_notice_names_every_source_package_and_its_licence():
    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    for package, (_, licence) in corpus.source_packages().items():
        assert f"  {package} (Debian " in notice and licence in notice, package
