"""Bounded bad input: data after a WARC record read line by line within a cap, file names of any bytes, each
real file read once however many links lead to it, ids unique across files, a non-text text column named as
a type error. Reader checks run the readers directly; the run checks are real Beam runs on a few records."""
import gzip
import json
import os
import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from assay.curation.document import Document, Rejection
from assay.curation.readers import expand_inputs, read_input
from assay.curation.readers.warc import MAX_LINE_BYTES

sys.path.insert(0, str(Path(__file__).parent))
from test_curation_robustness import page, warc_bytes  # noqa: E402
from test_output_commit import config, prose  # noqa: E402


def test_data_after_a_record_in_its_gzip_member_is_skipped_within_a_bounded_line(tmp_path):
    good = [(f"https://good.example/{i}", page(f"Good page {i}"), "text/html") for i in range(3)]
    first = gzip.decompress(warc_bytes(good[:1]))
    junk = b"x" * (24 << 20)  # 24 MB without a newline where the member should end
    path = tmp_path / "bloated.warc.gz"
    path.write_bytes(gzip.compress(first + junk, 1) + warc_bytes(good[1:]))
    tracemalloc.start()
    items = list(read_input(str(path)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES + (4 << 20), f"reading held {peak} bytes: the junk line was read whole"
    docs = [i for i in items if isinstance(i, Document)]
    rejs = [i for i in items if isinstance(i, Rejection)]
    assert sorted(d.url for d in docs) == [u for u, _, _ in good]  # each good record once
    (rej,) = rejs
    member_end = len(gzip.compress(first + junk, 1))
    assert rej.reason == "bad_warc_record" and rej.signals == {"offset": 0, "skipped_to": member_end}
    assert "record at offset 0 (read)" in rej.detail and f"more than {MAX_LINE_BYTES} bytes" in rej.detail


def test_a_symlink_loop_under_a_glob_reads_each_file_once(tmp_path):
    (tmp_path / "crawl" / "sub").mkdir(parents=True)
    (tmp_path / "crawl" / "a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "crawl" / "sub" / "b.jsonl").write_text('{"text": "b"}\n')
    os.symlink("..", tmp_path / "crawl" / "sub" / "loop")
    os.symlink("a.jsonl", tmp_path / "crawl" / "also-a.jsonl")
    found = expand_inputs([str(tmp_path / "crawl" / "**" / "*.jsonl"), str(tmp_path / "crawl")])
    assert [os.path.relpath(f, tmp_path) for f in found] == ["crawl/a.jsonl", "crawl/sub/b.jsonl"]


def test_a_text_column_of_another_type_is_a_type_error_naming_it(tmp_path):
    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": pa.array([1, None], pa.int64())}), path)
    first, second = read_input(str(path))
    assert first.reason == "wrong_type" and "type error" in first.detail and "int64" in first.detail
    assert second.reason == "missing_text_field" and "null" in second.detail
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"id": "x", "text": 7}\n{"id": "y", "text": ["a"]}\n')
    assert [(r.reason, "number" in r.detail or "array" in r.detail) for r in read_input(str(lines))] == [
        ("wrong_type", True), ("wrong_type", True)]


def test_a_run_reads_any_file_name_and_keeps_ids_unique_across_files(tmp_path):
    from assay.pipelines.curate.job import run_curation
    from assay.pipelines.job.sql import run_query

    crawl = tmp_path / "crawl"
    odd = os.fsdecode(b"caf\xe9-\xff")  # not UTF-8: held as surrogates
    (crawl / odd).mkdir(parents=True)
    (crawl / "plain").mkdir()
    for folder, seed in ((crawl / odd, 1), (crawl / "plain", 2)):  # both files use ids "1" and "2"; "u" once
        rows = [{"id": "1", "text": prose(seed)}, {"id": "2", "text": "tiny"}]
        if seed == 2:
            rows.append({"id": "u", "text": prose(7)})
        (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    run_curation(config([str(crawl)], str(out)))
    _, rows = run_query(str(out), "SELECT id, source FROM docs UNION ALL SELECT id, source FROM rejected ORDER BY id")
    shown = str(crawl) + "/caf\\xe9-\\xff/part.jsonl"
    plain = str(crawl / "plain" / "part.jsonl")
    assert sorted(rows) == sorted([(f"{shown}#1", shown), (f"{shown}#2", shown), (f"{plain}#1", plain),
                                   (f"{plain}#2", plain), ("u", plain)])
