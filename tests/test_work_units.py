"""Work units: a large JSONL, WARC(.gz), Parquet or Arrow file read as several ranges gives exactly the records,
ids and ledger details of the whole file (edge cases at the boundaries included), and a real `assay run` over
split files writes the same shards as over whole ones. (A kill mid-file resuming from the finished ranges:
tests/test_output_commit.py.)"""
from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_output_commit import config, pages_jsonl, prose
from test_readers import page, write_warc

from assay.curation.readers import ReaderConfig, Unit, plan_units, read_input
from assay.pipelines.curate.config import SAMPLE_DIR
from assay.pipelines.curate.job import run_curation
from assay.pipelines.job.sources import MIN_UNIT_BYTES, plan_file, unit_size

CFG = ReaderConfig()


def records(items) -> list[tuple]:
    """Everything a reader says about each record, in order."""
    return [(type(i).__name__, i.id, i.url, getattr(i, "text", None), getattr(i, "reason", None),
             getattr(i, "detail", None), dict(getattr(i, "signals", {}) or {}), i.source) for i in items]


def read_split(path: str, unit_bytes: int, cfg: ReaderConfig = CFG) -> tuple[list[Unit], list[tuple]]:
    units = plan_units(path, cfg, unit_bytes)
    return units, [r for u in units for r in records(read_input(u, cfg))]


def assert_same_as_whole(path: str, sizes=(1, 97, 1000, 4096), cfg: ReaderConfig = CFG) -> list[tuple]:
    whole = records(read_input(path, cfg))
    for size in sizes:
        units, parts = read_split(path, size, cfg)
        assert parts == whole, f"unit_bytes={size}: {len(units)} units"
    return whole


def jsonl_lines(path: Path, lines: list[str]) -> str:
    path.write_bytes("".join(lines).encode())
    return str(path)


def test_jsonl_ranges_give_the_whole_files_records_with_bad_lines_and_ids_by_line_number(tmp_path):
    lines = []
    for i in range(120):
        if i % 17 == 0:
            lines.append("{not json\n")
        elif i % 23 == 0:
            lines.append("\n")  # a blank line: counted, not read
        else:  # no "id" field: the id comes from the line number, which must count from the file's start
            lines.append(json.dumps({"text": prose(i, 1 + i % 4), "url": f"https://ex.example/{i}"}) + "\n")
    lines.append(json.dumps({"text": "last line without a newline"}))
    path = jsonl_lines(tmp_path / "a.jsonl", lines)
    whole = assert_same_as_whole(path)
    units = plan_units(path, CFG, 1000)
    assert len(units) > 5 and units[0].start == 0 and units[-1].end is None
    data = Path(path).read_bytes()
    for a, b in zip(units, units[1:]):
        assert a.end == b.start and data[b.start - 1:b.start] == b"\n"  # every unit starts at a line start
        assert b.before == data[:b.start].count(b"\n")
    assert sum(r[4] == "bad_json" for r in whole) == 8


def test_jsonl_boundary_inside_a_line_and_exactly_at_a_line_start(tmp_path):
    first = json.dumps({"id": "a", "text": "x" * 50}) + "\n"
    second = json.dumps({"id": "b", "text": "y" * 50}) + "\n"
    third = json.dumps({"id": "c", "text": "z" * 50}) + "\n"
    path = jsonl_lines(tmp_path / "b.jsonl", [first, second, third])
    exact = plan_units(path, CFG, len(first))  # the nominal offset is the second line's first byte
    assert [(u.start, u.before) for u in exact] == [(0, 0), (len(first), 1), (len(first) + len(second), 2)]
    inside = plan_units(path, CFG, len(first) + 5)  # inside the second line: it belongs to the first unit
    assert [(u.start, u.before) for u in inside] == [(0, 0), (len(first) + len(second), 2)]
    for units in (exact, inside):
        assert [d.id for u in units for d in read_input(u, CFG)] == ["a", "b", "c"]


def test_empty_small_and_compressed_files_stay_one_unit(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert plan_units(str(empty), CFG, 1) == [Unit(str(empty))]
    assert list(read_input(str(empty), CFG)) == []
    small = jsonl_lines(tmp_path / "small.jsonl", [json.dumps({"id": "s", "text": "t"}) + "\n"] * 3)
    assert plan_units(small, CFG) == [Unit(small)]  # under reader.unit_bytes (64 MiB)
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(Path(small).read_bytes() * 100))
    assert plan_units(str(packed), CFG, 1) == [Unit(str(packed))]  # no byte offsets inside a gzip stream
    one_line = jsonl_lines(tmp_path / "one.jsonl", [json.dumps({"id": "o", "text": "x" * 5000})])
    assert plan_units(one_line, CFG, 10) == [Unit(one_line)]


def test_a_line_over_the_size_limit_is_skipped_in_the_unit_that_owns_it(tmp_path):
    cfg = ReaderConfig(max_record_bytes=300)
    lines = [json.dumps({"id": f"l{i}", "text": ("w " * (400 if i == 5 else 20))}) + "\n" for i in range(12)]
    path = jsonl_lines(tmp_path / "big.jsonl", lines)
    whole = assert_same_as_whole(path, sizes=(1, 100, 500), cfg=cfg)
    assert [r[4] for r in whole].count("too_large") == 1


def warc_pages(n: int) -> list[dict]:
    return [{"url": f"https://site.example/{i}", "body": page(f"page {i} " + prose(i, 2))} for i in range(n)]


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
def test_warc_ranges_give_the_whole_files_records(tmp_path, gz):
    pages = warc_pages(40)
    pages[7] = {**pages[7], "status": "404 Not Found"}
    pages[12] = {**pages[12], "body": b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "ctype": "image/png"}
    path = write_warc(tmp_path / ("a.warc.gz" if gz else "a.warc"), pages, gz=gz)
    whole = assert_same_as_whole(path)
    assert sum(r[0] == "Document" for r in whole) == 38
    assert len(plan_units(path, CFG, 2000)) > 5


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
def test_a_cut_warc_reports_its_truncated_last_record_from_the_last_unit(tmp_path, gz):
    path = write_warc(tmp_path / ("cut.warc.gz" if gz else "cut.warc"), warc_pages(30), gz=gz)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) - 200])
    whole = assert_same_as_whole(path, sizes=(1, 1500))
    assert whole[-1][4] == ("truncated_gzip" if gz else "truncated_record")
    assert sum(r[0] == "Document" for r in whole) == 29


def test_a_corrupt_member_gives_the_same_documents_and_is_reported_split_or_not(tmp_path):
    """Bit rot in a gzip member: the walk stops there (the rest of the file is one unit) and both reads keep the
    same documents and quarantine the damage (warcio's recovery inside the damaged stretch depends on where its
    pass started, so the ledger's wording of the damage may differ)."""
    path = write_warc(tmp_path / "rot.warc.gz", warc_pages(30))
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = bytes(40)
    Path(path).write_bytes(bytes(data))
    whole = records(read_input(path, CFG))
    units, parts = read_split(path, len(data) // 3)
    assert len(units) >= 2 and all(u.start < middle for u in units)
    assert [r for r in parts if r[0] == "Document"] == [r for r in whole if r[0] == "Document"]
    assert any(r[0] == "Rejection" for r in whole) and any(r[0] == "Rejection" for r in parts)


@pytest.mark.parametrize("max_record_bytes", [10 << 20, 100_000], ids=["walked-through", "walk-stops"])
def test_a_bloated_gzip_member_is_planned_within_the_cap_and_read_as_in_the_whole_file(tmp_path, max_record_bytes):
    """A member with 3 MB of junk after its record: the planner inflates it in bounded pieces (output discarded)
    and walks on when it stays under 8x max_record_bytes, else stops there (the rest is one unit)."""
    before = write_warc(tmp_path / "a.warc.gz", warc_pages(10))
    after = write_warc(tmp_path / "b.warc.gz", warc_pages(10)[5:])
    with gzip.open(after) as fh:  # the second file's first record (warcinfo), bloated with junk in its member
        record = fh.read().split(b"\r\n\r\nWARC/1.0")[0] + b"\r\n\r\n"
    bloated = gzip.compress(record + b"x" * (3 << 20), 1)
    path = tmp_path / "bloated.warc.gz"
    path.write_bytes(Path(before).read_bytes() + bloated + Path(after).read_bytes())
    cfg = ReaderConfig(max_record_bytes=max_record_bytes)
    tracemalloc.start()
    units = plan_units(str(path), cfg, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 6 << 20, f"planning held {peak} bytes"
    bloated_at = len(Path(before).read_bytes())
    walked = [u.start for u in units if u.start > bloated_at]
    assert bool(walked) == (max_record_bytes > 1 << 20)
    assert_same_as_whole(str(path), sizes=(1, 3000), cfg=cfg)


def test_a_warc_gzipped_as_one_stream_stays_one_unit(tmp_path):
    plain = write_warc(tmp_path / "p.warc", warc_pages(20), gz=False)
    single = tmp_path / "single.warc.gz"
    single.write_bytes(gzip.compress(Path(plain).read_bytes()))
    assert plan_units(str(single), CFG, 100) == [Unit(str(single))]


def test_parquet_row_groups_and_arrow_batches(tmp_path):
    n = 250
    table = pa.table({"text": [prose(i, 1) if i % 40 else None for i in range(n)],
                      "url": [f"https://ex.example/{i}" for i in range(n)]})  # no id column: ids by row number
    parquet = tmp_path / "t.parquet"
    pq.write_table(table, parquet, row_group_size=30)
    whole = assert_same_as_whole(str(parquet), sizes=(1, 3000))
    assert len(plan_units(str(parquet), CFG, 1)) == 9 and sum(r[4] == "missing_text_field" for r in whole) == 7
    stream = tmp_path / "data-00000-of-00001.arrow"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=40):
            writer.write_batch(batch)
    assert [r[2:7] for r in records(read_input(str(stream), CFG))] == [r[2:7] for r in whole]  # same rows
    assert_same_as_whole(str(stream), sizes=(1, 2000))
    assert len(plan_units(str(stream), CFG, 1)) == 7
    no_text = tmp_path / "no_text.parquet"
    pq.write_table(pa.table({"body": ["a"] * 100}), no_text, row_group_size=10)
    assert plan_units(str(no_text), CFG, 1) == [Unit(str(no_text))]  # one "missing_text_field" for the file


def test_units_shrink_to_four_per_worker_but_not_below_the_floor():
    cfg = ReaderConfig()
    assert unit_size(800 << 20, cfg, 2) == 64 << 20
    assert unit_size(100 << 20, cfg, 2) == (100 << 20) // 8
    assert unit_size(3 << 20, cfg, 4) == MIN_UNIT_BYTES
    assert unit_size(100 << 20, ReaderConfig(unit_bytes=1000), 2) == 1000
    assert unit_size(100 << 20, ReaderConfig(unit_bytes=0), 2) == 0  # 0: files are not split


def _run(inputs: list[str], out: Path, unit_bytes: int):
    cfg = config(inputs, str(out))
    cfg.stages = ["extract", "langid", "dedup"]
    cfg.input.reader.unit_bytes = unit_bytes
    return run_curation(cfg)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {f"{sub}/{p.name}": p.read_bytes() for sub in ("docs", "rejected") for p in sorted((out / sub).iterdir())}


def test_a_run_over_split_files_writes_the_same_shards_as_over_whole_files(tmp_path):
    jsonl = tmp_path / "pages.jsonl"
    pages_jsonl(jsonl, 150, tag="j")
    with open(jsonl, "a") as fh:
        fh.write("{broken\n" + json.dumps({"id": "jp1", "text": "an id the file uses twice"}) + "\n")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()[:100] if line.startswith("{\"")]
    parquet = tmp_path / "pages.parquet"
    pq.write_table(pa.table({"text": [r["text"] for r in rows], "url": [r["url"] + "?pq" for r in rows]}),
                   parquet, row_group_size=15)
    warc = str(SAMPLE_DIR / "sample-00000.warc.gz")
    inputs = [str(jsonl), warc, str(parquet)]
    small = 20_000
    for path in inputs:
        assert len(plan_file(path, ReaderConfig(unit_bytes=small), 1)) >= 3, path
    for path in inputs:
        assert plan_file(path, ReaderConfig(unit_bytes=0), 2) == [Unit(path)]
    whole = _run(inputs, tmp_path / "whole", 0)
    split = _run(inputs, tmp_path / "split", small)
    assert shard_bytes(tmp_path / "split") == shard_bytes(tmp_path / "whole")
    assert {**split.funnel, "seconds": 0} == {**whole.funnel, "seconds": 0}
    assert whole.counts["kept"] > 50 and whole.counts["rejected"] > 20
