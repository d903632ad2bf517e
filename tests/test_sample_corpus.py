"""The embedded sample corpus (data/sample): readable WARC, a manifest that matches it, and the promised mix.

Every other area's end-to-end test runs on this corpus, so its shape is checked here against the real files.
"""
from __future__ import annotations

import collections
import gzip
import importlib.util
import io
import json
import re
import sys
import uuid
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
WARC_FILES = [SAMPLE / f"sample-{n:05d}.warc.gz" for n in range(3)]
MANIFEST_FIELDS = {"url", "record_id", "warc_file", "category", "source_package", "licence", "language",
                   "near_duplicate_of"}
# the mix: at least this many pages per category
MINIMUM_PER_CATEGORY = {"doc": 150, "non_english": 40, "index": 30, "spam": 40, "mailing_list": 30,
                        "chatter": 15, "ephemeral": 30}
MAX_TOTAL_BYTES = 10 * 1024 * 1024
MAX_PAGE_BYTES = 300_000


@pytest.fixture(scope="module")
def builder():
    """scripts/build_sample.py loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("assay_build_sample", REPO / "scripts" / "build_sample.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def records():
    """(warc file name, url, record id, WARC headers, HTTP headers, payload) for every record, in file order."""
    out = []
    for path in WARC_FILES:
        with path.open("rb") as handle:
            for record in ArchiveIterator(handle, check_digests="raise"):
                out.append((path.name, record.rec_headers.get_header("WARC-Target-URI"),
                            record.rec_headers.get_header("WARC-Record-ID"), record.rec_headers,
                            record.http_headers, record.content_stream().read()))
    return out


@pytest.fixture(scope="module")
def manifest():
    return [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def declared_charset(http_headers) -> str:
    match = re.search(r"charset=([\w-]+)", http_headers.get_header("Content-Type") or "")
    assert match, f"Content-Type without charset: {http_headers.get_header('Content-Type')}"
    return match.group(1)


def test_warc_records_are_well_formed_responses(records):
    assert records, "no WARC records read"
    for _name, url, rid, warc_headers, http_headers, payload in records:
        assert warc_headers.get_header("WARC-Type") == "response", url
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", warc_headers.get_header("WARC-Date")), url
        assert rid == f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>", url
        assert url.startswith("https://"), url
        assert http_headers.get_statuscode() == "200", url
        assert int(http_headers.get_header("Content-Length")) == len(payload), url
        text = payload.decode(declared_charset(http_headers))  # strict: the charset must be the real one
        assert "<html" in text[:2000].lower() and text.strip(), url


def test_gzip_members_carry_no_timestamp():
    for path in WARC_FILES:
        data = path.read_bytes()
        assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0", f"{path.name}: gzip mtime is not 0"
        assert gzip.decompress(data).startswith(b"WARC/1.")


def test_manifest_matches_records_one_to_one(records, manifest):
    assert [(r[0], r[1], r[2]) for r in records] == [(m["warc_file"], m["url"], m["record_id"]) for m in manifest]
    assert len({m["url"] for m in manifest}) == len(manifest), "urls must be unique"
    for row in manifest:
        assert MANIFEST_FIELDS <= row.keys(), row
        assert row["licence"] and row["source_package"], row
    by_url = {r[1]: r for r in records}
    for row in manifest:
        assert row["bytes"] == len(by_url[row["url"]][5])
        assert row["charset"] == declared_charset(by_url[row["url"]][4])
    assert len({m["warc_file"] for m in manifest}) == len(WARC_FILES)


def test_every_category_reaches_its_minimum(manifest):
    counts = collections.Counter(m["category"] for m in manifest)
    assert set(counts) == set(MINIMUM_PER_CATEGORY), counts
    for category, minimum in MINIMUM_PER_CATEGORY.items():
        assert counts[category] >= minimum, (category, counts[category])
    assert 350 <= len(manifest) <= 450


def test_size_stays_within_budget(records):
    total = sum(p.stat().st_size for p in SAMPLE.iterdir() if p.is_file())
    assert total <= MAX_TOTAL_BYTES, f"data/sample is {total} bytes"
    assert max(len(r[5]) for r in records) <= MAX_PAGE_BYTES


def test_several_languages_and_they_are_right(builder, records, manifest):
    """Manifest languages are ISO 639-1 and agree with fastText lid.176 on the page text."""
    languages = collections.Counter(m["language"] for m in manifest if m["category"] == "non_english")
    assert len(languages) >= 5 and "en" not in languages, languages
    assert all(re.fullmatch(r"[a-z]{2}", m["language"]) for m in manifest)
    assert {m["language"] for m in manifest if m["category"] == "doc"} == {"en"}
    lid = builder.LanguageID()
    by_url = {r[1]: r for r in records}
    non_english = [m for m in manifest if m["category"] == "non_english"]
    checked = non_english + [m for m in manifest if m["category"] == "doc"][::6]
    wrong = []
    for row in checked:
        _, _, _, _, http_headers, payload = by_url[row["url"]]
        text = builder.visible_text(payload.decode(declared_charset(http_headers)))
        if lid(text) != row["language"]:
            wrong.append(row["url"])
    assert not wrong, f"language disagrees with lid.176: {wrong}"


def test_near_duplicates_point_to_real_originals_and_are_near(builder, records, manifest):
    by_url = {m["url"]: m for m in manifest}
    pairs = [m for m in manifest if m["near_duplicate_of"]]
    assert len(pairs) >= 12
    payloads = {r[1]: (r[5], declared_charset(r[4])) for r in records}
    for row in pairs:
        original = by_url.get(row["near_duplicate_of"])
        assert original is not None, f"{row['url']} points to a missing url"
        assert original["near_duplicate_of"] is None and original["category"] == row["category"]
        similarity = builder.jaccard(builder.shingles(builder.extracted_text(*payloads[row["url"]])),
                                     builder.shingles(builder.extracted_text(*payloads[original["url"]])))
        assert 0.8 <= similarity < 0.97, (row["url"], similarity)
        assert similarity == pytest.approx(row["near_duplicate_jaccard"], abs=0.01)


def test_notice_names_every_source_and_licence(manifest):
    notice = (REPO / "NOTICE").read_text(encoding="utf-8")
    for package, licence in {(m["source_package"], m["licence"]) for m in manifest}:
        assert package in notice, f"NOTICE does not name {package}"
        for part in re.split(r" OR | / | WITH |\(.*?\)", licence):
            assert part.strip() in notice, f"NOTICE does not give {package}'s licence {part.strip()!r}"


def test_writer_is_deterministic_and_readable(builder, tmp_path):
    """The same pages give the same bytes, records read back intact, and writes leave no temp files."""
    pages = [builder.Page(url=f"https://docs.example.org/{n}.html", category="doc", source_package="test",
                          licence="MIT", language="fr", body=f"<html><body>élève {n}</body></html>".encode(cs),
                          charset=cs, source_path="test")
             for n, cs in enumerate(["utf-8", "iso-8859-1"])]
    first = builder.warc_bytes(pages, builder.SampleConfig().warc_date)
    assert first == builder.warc_bytes(pages, builder.SampleConfig().warc_date)
    read = [(r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
            for r in ArchiveIterator(io.BytesIO(first), check_digests="raise")]
    assert read == [(p.url, p.body) for p in pages]
    builder.atomic_write(tmp_path / "out.warc.gz", first)
    assert [p.name for p in tmp_path.iterdir()] == ["out.warc.gz"]
    assert (tmp_path / "out.warc.gz").read_bytes() == first
