"""Input readers on real files written here with warcio, gzip, zstandard and pyarrow: every format round-trips,
and each kind of bad input becomes the right read-stage Rejection while the good records around it still come
through."""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import tracemalloc
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam.io.filesystem import FileMetadata, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers import REASONS, ReaderConfig, expand_inputs, read_input

PAGE = "<html><head><title>{t}</title></head><body><p>{t}: the mitochondria is the powerhouse.</p></body></html>"


def page(title: str) -> bytes:
    return PAGE.format(t=title).encode("utf-8")


def write_warc(path, records, gz=True):
    """records: dicts with url, body and optional ctype, status, rtype ("response"/"resource"/"request"/...)."""
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=gz)
        info = writer.create_warc_record("", "warcinfo", payload=io.BytesIO(b"software: assay-tests\r\n"),
                                         warc_content_type="application/warc-fields",
                                         warc_headers_dict={"WARC-Record-ID": "<urn:uuid:00000000-0000-0000-0000-"
                                                            "000000000000>", "WARC-Date": "2024-05-01T00:00:00Z"})
        writer.write_record(info)
        for n, r in enumerate(records):
            record_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"{n}:{r['url']}")
            fixed = {"WARC-Record-ID": f"<urn:uuid:{record_uuid}>",
                     "WARC-Date": f"2024-05-01T00:00:{n % 60:02d}Z"}  # deterministic bytes
            rtype = r.get("rtype", "response")
            body = r["body"]
            ctype = r.get("ctype", "text/html; charset=utf-8")
            if rtype in ("response", "request"):
                http = StatusAndHeaders(r.get("status", "200 OK") if rtype == "response" else "GET / HTTP/1.1",
                                        [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                        protocol="HTTP/1.1", is_http_request=rtype == "request")
                rec = writer.create_warc_record(r["url"], rtype, payload=io.BytesIO(body), http_headers=http,
                                                warc_headers_dict=fixed)
            else:
                rec = writer.create_warc_record(r["url"], rtype, payload=io.BytesIO(body), warc_content_type=ctype,
                                                warc_headers_dict=fixed)
            writer.write_record(rec)
    return str(path)


def record_ids(path):
    """(record id, uri, offset) of every record, read independently with warcio."""
    out = []
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        for rec in it:
            out.append((rec.rec_headers.get_header("WARC-Record-ID"), rec.rec_headers.get_header("WARC-Target-URI"),
                        it.offset))
    return out


def split(items):
    docs = [i for i in items if isinstance(i, Document)]
    rejs = [i for i in items if isinstance(i, Rejection)]
    assert len(docs) + len(rejs) == len(items)
    for r in rejs:
        assert r.stage == "read" and r.reason in REASONS and r.detail and r.source
    return docs, rejs


def by_url(items):
    return {i.url: i for i in items}


# ---------------------------------------------------------------- WARC


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
def test_warc_round_trip_keeps_documents_and_passes_over_non_documents(tmp_path, gz):
    path = write_warc(tmp_path / ("crawl.warc.gz" if gz else "crawl.warc"), [
        {"url": "https://a.example/one", "body": page("one")},
        {"url": "https://a.example/one", "body": b"", "rtype": "request"},
        {"url": "https://a.example/two", "body": page("two")},
        {"url": "https://a.example/notes.txt", "body": b"plain notes", "rtype": "resource", "ctype": "text/plain"},
        {"url": "https://a.example/meta", "body": b"outlinks: x", "rtype": "metadata",
         "ctype": "application/warc-fields"},
        {"url": "https://a.example/two", "body": b"two: extracted text", "rtype": "conversion", "ctype": "text/plain"},
    ], gz=gz)
    docs, rejs = split(list(read_input(path, ReaderConfig())))
    assert rejs == []
    ids = {uri: rid for rid, uri, _ in record_ids(path)[::-1] if rid}  # the first record of each URI
    assert [d.url for d in docs] == ["https://a.example/one", "https://a.example/two", "https://a.example/notes.txt",
                                     "https://a.example/two"]
    one, two, notes, wet = docs
    assert one.text == page("one").decode() and one.mime == "text/html" and one.source == path
    assert notes.text == "plain notes" and notes.mime == "text/plain"
    assert wet.text == "two: extracted text" and wet.mime == "text/plain" and wet.id != two.id
    # the response's id is its WARC-Record-ID (the request record for the same URI comes after it)
    first = next(rid for rid, uri, _ in record_ids(path) if uri == "https://a.example/one")
    assert one.id == first and two.id == ids["https://a.example/two"]
    assert one.date.startswith("20") and one.domain == "a.example"
    again = [d.id for d in read_input(path)]
    assert again == [d.id for d in docs]


def test_warc_bad_payloads_are_quarantined_and_neighbours_survive(tmp_path):
    rng = random.Random(7)
    garbage = bytes(b for b in rng.randbytes(5000) if b)  # no NULs: this is an encoding fault, not binary
    path = write_warc(tmp_path / "mixed.warc.gz", [
        {"url": "https://ok.example/first", "body": page("first")},
        {"url": "https://bad.example/utf8", "body": garbage, "ctype": "text/html; charset=utf-8"},
        {"url": "https://ok.example/empty", "body": b""},
        {"url": "https://bad.example/png", "body": b"\x89PNG\r\n\x1a\n" + bytes(200), "ctype": "image/png"},
        {"url": "https://bad.example/pdf", "body": b"%PDF-1.4 text-ish", "ctype": "text/html"},
        {"url": "https://bad.example/nul", "body": b"<html>\x00\x01\x00</html>", "ctype": "text/html"},
        {"url": "https://bad.example/octets", "body": b"abc", "ctype": "application/octet-stream"},
        {"url": "https://bad.example/missing", "body": page("gone"), "status": "404 Not Found"},
        {"url": "https://ok.example/latin1", "body": "café crème".encode("latin-1"),
         "ctype": "text/html; charset=ISO-8859-1"},
        {"url": "https://ok.example/meta", "body": b'<meta charset="koi8-r"><p>' + "привет мир".encode("koi8-r")},
        {"url": "https://ok.example/last", "body": page("last")},
    ])
    docs, rejs = split(list(read_input(path)))
    reasons = {r.url: r.reason for r in rejs}
    assert reasons == {
        "https://bad.example/utf8": "invalid_encoding",
        "https://bad.example/png": "binary_content",
        "https://bad.example/pdf": "binary_content",
        "https://bad.example/nul": "binary_content",
        "https://bad.example/octets": "binary_content",
        "https://bad.example/missing": "http_status",
    }
    got = by_url(docs)
    assert sorted(got) == ["https://ok.example/empty", "https://ok.example/first", "https://ok.example/last",
                           "https://ok.example/latin1", "https://ok.example/meta"]
    assert got["https://ok.example/empty"].text == ""  # empty is not a read error: extraction rejects it
    assert got["https://ok.example/latin1"].text == "café crème"
    assert "привет мир" in got["https://ok.example/meta"].text
    bad_utf8 = by_url(rejs)["https://bad.example/utf8"]
    assert bad_utf8.id.startswith("<urn:uuid:") and bad_utf8.text and bad_utf8.signals["bytes"] == len(garbage)
    row = bad_utf8.to_row()  # fits the ledger schema
    assert row["stage"] == "read" and json.loads(row["signals"])["offset"] > 0


def test_warc_20mb_page_is_quarantined_without_loading_it(tmp_path):
    big = b"<html><body>" + b"word " * (4 * 1024 * 1024) + b"</body></html>"  # about 20 MB
    path = write_warc(tmp_path / "big.warc.gz", [
        {"url": "https://ok.example/before", "body": page("before")},
        {"url": "https://big.example/huge", "body": big},
        {"url": "https://ok.example/after", "body": page("after")},
    ])
    del big
    tracemalloc.start()
    try:
        items = list(read_input(path, ReaderConfig()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    docs, rejs = split(items)
    assert [d.url for d in docs] == ["https://ok.example/before", "https://ok.example/after"]
    assert [(r.url, r.reason) for r in rejs] == [("https://big.example/huge", "too_large")]
    assert rejs[0].signals["bytes"] > 20_000_000 and rejs[0].text is None
    assert peak < 4 * 1024 * 1024, f"reading a 20 MB record peaked at {peak} bytes: it was loaded"


def test_warc_record_over_a_configured_limit_is_too_large(tmp_path):
    path = write_warc(tmp_path / "small.warc", [{"url": "https://a.example/x", "body": page("x")},
                                                {"url": "https://a.example/y", "body": b"y" * 5000}], gz=False)
    docs, rejs = split(list(read_input(path, ReaderConfig(max_record_bytes=2000))))
    assert [d.url for d in docs] == ["https://a.example/x"]
    assert [(r.url, r.reason) for r in rejs] == [("https://a.example/y", "too_large")]


def _five_pages(tmp_path, name, gz):
    return write_warc(tmp_path / name, [{"url": f"https://a.example/{i}", "body": page(f"p{i}") * 20}
                                        for i in range(5)], gz=gz)


def test_truncated_warc_gz_yields_the_readable_records_then_one_rejection(tmp_path):
    path = _five_pages(tmp_path, "cut.warc.gz", gz=True)
    offsets = [off for _, uri, off in record_ids(path) if uri]
    data = open(path, "rb").read()
    cut = offsets[4] + (len(data) - offsets[4]) // 2  # inside the last record's gzip member
    open(path, "wb").write(data[:cut])
    docs, rejs = split(list(read_input(path)))
    assert [d.url for d in docs] == [f"https://a.example/{i}" for i in range(4)]
    assert [r.reason for r in rejs] == ["truncated_gzip"]
    # cut inside the headers of a member: the same outcome, reported from that offset
    open(path, "wb").write(data[:offsets[4] + 12])
    docs, rejs = split(list(read_input(path)))
    assert len(docs) == 4 and [r.reason for r in rejs] == ["truncated_gzip"]
    assert rejs[0].signals["offset"] == offsets[4]


def test_broken_warc_header_is_skipped_and_reading_resumes(tmp_path):
    path = _five_pages(tmp_path, "broken.warc", gz=False)
    data = open(path, "rb").read()
    starts = [i for i in range(len(data)) if data.startswith(b"WARC/1.", i)]
    broken = data[:starts[3]] + b"WRAC/9.9 garbled header\r\n" + data[starts[3] + len(b"WARC/1.1\r\n"):]
    open(path, "wb").write(broken)
    docs, rejs = split(list(read_input(path)))
    assert [d.url for d in docs] == ["https://a.example/0", "https://a.example/1", "https://a.example/3",
                                     "https://a.example/4"]
    assert [r.reason for r in rejs] == ["bad_warc_record"]
    assert rejs[0].signals["offset"] == starts[3] and "garbled" in rejs[0].detail


def test_corrupt_gzip_member_is_skipped_and_reading_resumes(tmp_path):
    path = _five_pages(tmp_path, "rot.warc.gz", gz=True)
    offsets = [off for _, uri, off in record_ids(path) if uri]
    data = bytearray(open(path, "rb").read())
    for k in range(offsets[2] + 20, offsets[2] + 80):  # bit rot inside the third page's member
        data[k] ^= 0x5A
    open(path, "wb").write(bytes(data))
    docs, rejs = split(list(read_input(path)))
    assert [d.url for d in docs] == ["https://a.example/0", "https://a.example/1", "https://a.example/3",
                                     "https://a.example/4"]
    assert len(rejs) == 1 and rejs[0].reason == "bad_warc_record" and rejs[0].signals["offset"] == offsets[2]
    assert rejs[0].signals["bytes"] == offsets[3] - offsets[2]


def test_warc_gzipped_as_one_stream_is_read_whole(tmp_path):
    plain = _five_pages(tmp_path, "whole.warc", gz=False)
    path = tmp_path / "whole.warc.gz"
    path.write_bytes(gzip.compress(open(plain, "rb").read()))
    docs, rejs = split(list(read_input(str(path))))
    assert rejs == [] and [d.url for d in docs] == [f"https://a.example/{i}" for i in range(5)]
    assert [d.id for d in docs] == [d.id for d in read_input(plain)]


def test_warc_gzipped_as_one_stream_and_cut_keeps_what_was_read(tmp_path):
    plain = _five_pages(tmp_path, "whole.warc", gz=False)
    packed = gzip.compress(open(plain, "rb").read())
    path = tmp_path / "whole-cut.warc.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    docs, rejs = split(list(read_input(str(path))))
    assert 1 <= len(docs) < 5 and [d.url for d in docs] == [f"https://a.example/{i}" for i in range(len(docs))]
    assert [r.reason for r in rejs] == ["truncated_gzip"]


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
def test_damaged_warc_never_raises_never_passes_damage_and_never_loses_in_silence(tmp_path, gz):
    """Seeded damage (flipped bytes, cuts, deleted spans) at 240 places: every Document that comes out is an
    original page, and whenever a page is missing a rejection says so (unless a cut falls exactly between
    records, which leaves a valid shorter file)."""
    path = _five_pages(tmp_path, "fuzz.warc.gz" if gz else "fuzz.warc", gz)
    data = open(path, "rb").read()
    originals = {page(f"p{i}").decode() * 20 for i in range(5)}
    boundaries = {off for _, _, off in record_ids(path)}
    for seed in range(240):
        rng, damaged, kind = random.Random(seed), bytearray(data), seed % 3
        if kind == 0:
            for _ in range(rng.randint(1, 5)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif kind == 1:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            start = rng.randrange(len(damaged))
            del damaged[start:start + rng.randint(1, 300)]
        open(path, "wb").write(bytes(damaged))
        docs, rejs = split(list(read_input(path)))
        assert all(d.text in originals for d in docs), f"seed {seed}: a damaged page passed as a document"
        assert not [r for r in rejs if r.reason == "unreadable_file"], f"seed {seed}: gave up on the file"
        if len(docs) < 5 and not (kind == 1 and len(damaged) in boundaries) and bytes(damaged) != data:
            assert rejs, f"seed {seed}: {5 - len(docs)} page(s) lost without a rejection"


# ---------------------------------------------------------------- HTML files


def test_html_directory_one_document_per_file(tmp_path):
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_bytes(b'<html><head><link rel="canonical" href="https://docs.example/">'
                                      b"</head><body>home</body></html>")
    (site / "sub" / "page.htm").write_bytes('<meta charset="windows-1251"><p>Привет</p>'.encode("cp1251"))
    (site / "sub" / "empty.html").write_bytes(b"")
    (site / "sub" / "image.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (site / "sub" / "garbled.html").write_bytes(bytes(b for b in random.Random(3).randbytes(4000) if b))
    (site / "notes.txt").write_text("not a page")
    (site / ".partial.html").write_text("<p>half written</p>")
    units = expand_inputs([str(site)], ReaderConfig())
    assert units == sorted(str(p) for p in [site / "index.html", site / "sub" / "page.htm", site / "sub" / "empty.html",
                                            site / "sub" / "image.html", site / "sub" / "garbled.html"])
    cfg = ReaderConfig(id_base=str(site))
    items = [item for unit in units for item in read_input(unit, cfg)]
    docs, rejs = split(items)
    by_source = {i.source.rsplit("/", 1)[-1]: i for i in items}
    assert by_source["index.html"].url == "https://docs.example/" and by_source["index.html"].mime == "text/html"
    assert by_source["index.html"].id == stable_id("index.html")
    assert "Привет" in by_source["page.htm"].text and by_source["page.htm"].id == stable_id("sub/page.htm")
    assert isinstance(by_source["empty.html"], Document) and by_source["empty.html"].text == ""
    assert {r.source.rsplit("/", 1)[-1]: r.reason for r in rejs} == {"image.html": "binary_content",
                                                                      "garbled.html": "invalid_encoding"}
    # the same site copied elsewhere keeps its ids
    moved = tmp_path / "moved"
    site.rename(moved)
    again = list(read_input(str(moved / "sub" / "page.htm"), ReaderConfig(id_base=str(moved))))
    assert again[0].id == stable_id("sub/page.htm")


def test_html_decoding_order_bom_markup_utf8_then_detection(tmp_path):
    russian = "<p>Привет, как дела? Это обычная русская страница про историю и науку.</p>"
    files = {
        "bom16.html": "<p>héllo wörld</p>".encode("utf-16"),  # NUL bytes, but a BOM says UTF-16: text
        "declared.html": b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>caf\xe9</p>',
        "plain-utf8.html": "<p>naïve ✓</p>".encode(),
        "undeclared-cp1251.html": russian.encode("cp1251"),
        "one-bad-byte.html": "<p>".encode() + "long valid text ✓ ".encode() * 200 + b"\xff</p>",
    }
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    texts = {}
    for unit in expand_inputs([str(tmp_path)]):
        (item,) = read_input(unit)
        assert isinstance(item, Document), item
        texts[unit.rsplit("/", 1)[-1]] = item.text
    assert texts["bom16.html"] == "<p>héllo wörld</p>"
    assert texts["declared.html"].endswith("<p>café</p>")
    assert texts["plain-utf8.html"] == "<p>naïve ✓</p>"
    assert texts["undeclared-cp1251.html"] == russian
    assert texts["one-bad-byte.html"].endswith("✓ \ufffd</p>")  # UTF-8 with one replaced byte, not mojibake


def test_html_file_over_the_limit_is_not_read(tmp_path):
    path = tmp_path / "huge.html"
    path.write_bytes(b"<p>" + b"a" * 5000 + b"</p>")
    (rej,) = read_input(str(path), ReaderConfig(max_record_bytes=1000))
    assert rej.reason == "too_large" and rej.signals["bytes"] == 5007


# ---------------------------------------------------------------- JSONL


def jsonl_lines():
    return [
        json.dumps({"doc_id": "d1", "body": "first text", "link": "https://j.example/1", "date": "2024-01-01"}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"doc_id": "d2", "title": "no body here"}),
        json.dumps({"body": "second text without id"}),
        json.dumps({"doc_id": 7, "body": "x" * 400}),
        json.dumps({"doc_id": "d3", "body": "Grüße, ünïcode ✓", "link": None}),
    ]


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_jsonl_round_trip_and_bad_lines(tmp_path, compression):
    raw = ("\n".join(jsonl_lines()) + "\n").encode()
    raw = raw.replace(b'"second text', b'"second \xff\xfe text')  # invalid UTF-8 inside line 6
    raw += b'{"doc_id": "d4", "body": "last"}'  # no trailing newline
    name = "data.jsonl" + (f".{compression}" if compression else "")
    data = {"": raw, "gz": gzip.compress(raw), "zst": zstandard.ZstdCompressor().compress(raw)}[compression]
    path = tmp_path / name
    path.write_bytes(data)
    cfg = ReaderConfig(text_field="body", id_field="doc_id", url_field="link", max_record_bytes=300)
    items = list(read_input(str(path), cfg))
    docs, rejs = split(items)
    assert [(d.id, d.text, d.url, d.mime) for d in docs] == [
        ("d1", "first text", "https://j.example/1", "text/plain"),
        ("d3", "Grüße, ünïcode ✓", "", "text/plain"),
        ("d4", "last", "", "text/plain"),
    ]
    assert docs[0].date == "2024-01-01"
    assert [(r.signals["line"], r.reason) for r in rejs] == [
        (2, "bad_json"), (3, "bad_json"), (5, "missing_text_field"), (6, "invalid_encoding"), (7, "too_large")]
    assert rejs[2].id == "d2" and "title" in rejs[2].detail and rejs[0].text == "{not json"
    assert rejs[3].id == stable_id(str(path), "6")
    assert [i.id for i in read_input(str(path), cfg)] == [i.id for i in items]


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_truncated_compressed_jsonl_keeps_the_lines_before_the_cut(tmp_path, compression):
    lines = [json.dumps({"id": f"r{i}", "text": f"record {i} " + "".join(random.Random(i).choices("abcdefgh ", k=300))})
             for i in range(200)]
    raw = ("\n".join(lines) + "\n").encode()
    if compression == "gz":
        data = gzip.compress(raw)
    else:  # several frames, as a streaming writer makes them
        c = zstandard.ZstdCompressor()
        data = b"".join(c.compress(raw[i:i + 8192]) for i in range(0, len(raw), 8192))
    path = tmp_path / f"cut.jsonl.{compression}"
    path.write_bytes(data[: len(data) * 3 // 4])
    docs, rejs = split(list(read_input(str(path))))
    assert 50 < len(docs) < 200
    assert [d.id for d in docs] == [f"r{i}" for i in range(len(docs))]
    assert all(d.text == json.loads(lines[i])["text"] for i, d in enumerate(docs))
    assert [r.reason for r in rejs] == ["truncated_gzip"] and rejs[0].signals["line"] == len(docs) + 1


# ---------------------------------------------------------------- Parquet


def test_parquet_round_trip_in_batches(tmp_path):
    table = pa.table({
        "key": ["a", None, "c", "d", "e"],
        "content": ["alpha", "beta", None, "delta " * 100, "epsilon"],
        "page_url": ["https://p.example/a", None, None, None, "https://p.example/e"],
        "extra": [1, 2, 3, 4, 5],
    })
    path = str(tmp_path / "docs.parquet")
    pq.write_table(table, path, row_group_size=2)
    cfg = ReaderConfig(text_field="content", id_field="key", url_field="page_url", max_record_bytes=200,
                       parquet_batch_rows=2)
    items = list(read_input(path, cfg))
    docs, rejs = split(items)
    assert [(d.id, d.text, d.url) for d in docs] == [
        ("a", "alpha", "https://p.example/a"),
        (stable_id(path, "1"), "beta", ""),
        ("e", "epsilon", "https://p.example/e"),
    ]
    assert [(r.id, r.reason, r.signals["row"]) for r in rejs] == [("c", "missing_text_field", 2), ("d", "too_large", 3)]
    assert [i.id for i in read_input(path, cfg)] == [i.id for i in items]


def test_parquet_without_the_text_column_and_a_corrupt_file(tmp_path):
    path = str(tmp_path / "other.parquet")
    pq.write_table(pa.table({"body": ["x"]}), path)
    (rej,) = read_input(path, ReaderConfig())
    assert rej.reason == "missing_text_field" and "body" in rej.detail and "reader.text_field" in rej.detail
    good = pq.read_table(path)
    assert good.num_rows == 1
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(open(path, "rb").read()[:-20])
    (rej,) = read_input(str(broken), ReaderConfig())
    assert rej.reason == "unreadable_file" and "parquet" in rej.detail.lower()


# ---------------------------------------------------------------- inputs and config


def test_expand_inputs_files_dirs_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/x.jsonl", "a/y.jsonl.zst", "b.warc.gz", "c.parquet", "a/skip.tmp.jsonl", "readme.md"]:
        (tmp_path / name).write_bytes(b"")
    got = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.warc.gz"), str(tmp_path / "c.parquet"),
                         str(tmp_path / "c.parquet")], ReaderConfig(exclude=["*.tmp.*"]))
    assert got == [str(tmp_path / "a/x.jsonl"), str(tmp_path / "a/y.jsonl.zst"), str(tmp_path / "b.warc.gz"),
                   str(tmp_path / "c.parquet")]
    assert expand_inputs([str(tmp_path)], ReaderConfig(include=["*.parquet"])) == [str(tmp_path / "c.parquet")]
    with pytest.raises(ValueError, match="does not exist.*warc"):
        expand_inputs([str(tmp_path / "nope")])
    with pytest.raises(ValueError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.html")])
    with pytest.raises(ValueError, match="readme.md.*no known format"):
        expand_inputs([str(tmp_path / "readme.md")])
    assert expand_inputs([str(tmp_path / "readme.md")], ReaderConfig(format="jsonl")) == [str(tmp_path / "readme.md")]


def test_reader_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        ReaderConfig(format="csv")
    with pytest.raises(ValueError, match="max_record_bytes"):
        ReaderConfig(max_record_bytes=0)


def test_unreadable_file_is_quarantined_not_raised(tmp_path):
    path = tmp_path / "locked.jsonl"
    path.write_text('{"text": "a"}\n')
    path.chmod(0)
    try:
        items = list(read_input(str(path)))
    finally:
        path.chmod(0o644)
    if items and isinstance(items[0], Document):  # running as root: permissions do not apply
        assert items[0].text == "a"
    else:
        assert [r.reason for r in items] == ["unreadable_file"] and "PermissionError" in items[0].detail


# ---------------------------------------------------------------- inside a real Beam pipeline


def test_readers_in_a_beam_pipeline_route_rejections_and_keep_going(tmp_path):
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.util import assert_that, equal_to

    warc = _five_pages(tmp_path, "crawl.warc.gz", gz=True)
    data = open(warc, "rb").read()
    open(warc, "wb").write(data[: len(data) - 40])  # cut inside the last page
    (tmp_path / "lines.jsonl").write_text('{"id": "j1", "text": "kept"}\n{broken\n{"id": "j2", "text": "also kept"}\n')
    pq.write_table(pa.table({"id": ["p1"], "text": ["from parquet"]}), tmp_path / "table.parquet")
    cfg = ReaderConfig()
    units = expand_inputs([str(tmp_path)], cfg)
    assert len(units) == 3

    def key(item):
        return ("doc", item.id, item.text[:12]) if isinstance(item, Document) else ("rejected", item.reason, "")

    expected = sorted(key(i) for unit in units for i in read_input(unit, cfg))
    assert ("rejected", "truncated_gzip", "") in expected and ("rejected", "bad_json", "") in expected
    with beam.Pipeline(runner=FnApiRunner()) as p:
        items = p | beam.Create(units) | beam.Reshuffle() | beam.FlatMap(read_input, cfg)
        assert_that(items | beam.Map(key), equal_to(expected))


# ---------------------------------------------------------------- remote paths through Beam's FileSystems


class TmpBucketFileSystem(LocalFileSystem):
    """A Beam file system registered under assaytest:// that keeps its objects in a local folder: the readers
    reach it only through FileSystems, exactly as they reach gs:// or s3:// on a cluster."""

    PREFIX = "assaytest://"
    root = ""

    @classmethod
    def scheme(cls):
        return "assaytest"

    def _local(self, path):
        return os.path.join(self.root, path[len(self.PREFIX):])

    def match(self, patterns, limits=None):
        results = super().match([self._local(p) for p in patterns], limits)
        return [MatchResult(pattern, [FileMetadata(self.PREFIX + os.path.relpath(m.path, self.root), m.size_in_bytes)
                                      for m in result.metadata_list])
                for pattern, result in zip(patterns, results)]

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)


def test_remote_paths_are_listed_and_read_through_beam_filesystems(tmp_path):
    TmpBucketFileSystem.root = str(tmp_path)
    crawl = tmp_path / "crawl"
    (crawl / "site").mkdir(parents=True)
    warc = _five_pages(crawl, "pages.warc.gz", gz=True)
    offsets = [off for _, uri, off in record_ids(warc) if uri]
    data = open(warc, "rb").read()
    open(warc, "wb").write(data[: offsets[4] + 30])  # cut inside the last page
    (crawl / "rows.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"id": "r1", "text": "row"}\n{bad\n'))
    pq.write_table(pa.table({"id": ["q1"], "text": ["from parquet"]}), crawl / "table.parquet")
    (crawl / "site" / "page.html").write_bytes(b"<p>saved page</p>")
    (crawl / ".staging.jsonl").write_text('{"text": "half written"}\n')
    units = expand_inputs(["assaytest://crawl"])
    assert units == ["assaytest://crawl/pages.warc.gz", "assaytest://crawl/rows.jsonl.zst",
                     "assaytest://crawl/site/page.html", "assaytest://crawl/table.parquet"]
    assert expand_inputs(["assaytest://crawl/*.parquet"]) == ["assaytest://crawl/table.parquet"]
    with pytest.raises(ValueError, match="assaytest://nothing.*does not exist"):
        expand_inputs(["assaytest://nothing"])
    cfg = ReaderConfig(id_base="assaytest://crawl")
    got = {unit: split(list(read_input(unit, cfg))) for unit in units}
    docs, rejs = got["assaytest://crawl/pages.warc.gz"]
    assert [d.url for d in docs] == [f"https://a.example/{i}" for i in range(4)]
    assert [r.reason for r in rejs] == ["truncated_gzip"]
    assert [(d.id, d.text) for d in got["assaytest://crawl/rows.jsonl.zst"][0]] == [("r1", "row")]
    assert [r.reason for r in got["assaytest://crawl/rows.jsonl.zst"][1]] == ["bad_json"]
    assert [d.text for d in got["assaytest://crawl/table.parquet"][0]] == ["from parquet"]
    (page_doc,) = got["assaytest://crawl/site/page.html"][0]
    assert page_doc.id == stable_id("site/page.html") and page_doc.source == "assaytest://crawl/site/page.html"
