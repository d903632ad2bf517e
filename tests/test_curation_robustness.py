"""Bad input lands in the ledger without failing the run; a killed run, run again, gives identical output."""
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from assay.curation.document import Document
from assay.curation.stage import Stage
from assay.pipelines.curate.config import SAMPLE_DIR, CurateConfig
from assay.pipelines.curate.job import run_curation

PROSE = ("Indexes let a database find rows without reading the whole table. A B-tree keeps keys in order, "
         "so range queries and sorted scans are cheap, and every lookup touches only a few pages. ") * 12


def warc_bytes(records: list[tuple[str, bytes, str]]) -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for url, body, ctype in records:
        http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return buf.getvalue()


def page(title: str) -> bytes:
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1><p>{PROSE}</p></article>"
            "</body></html>").encode()


def config(inputs: list[str], out: str, workers=1, mode="in_memory") -> CurateConfig:
    cfg = CurateConfig()
    cfg.input.paths = inputs
    cfg.output.path = out
    cfg.output.histograms = False
    cfg.runner.workers, cfg.runner.mode, cfg.runner.progress = workers, mode, False
    return cfg


def test_bad_input_goes_to_the_ledger_and_the_run_succeeds(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = warc_bytes([(f"https://good.example/{i}", page(f"Good page {i}"),
                        "text/html; charset=utf-8") for i in range(3)])
    (src / "good.warc.gz").write_bytes(good)
    second = warc_bytes([("https://cut.example/b", page("Cut B"), "text/html")])
    (src / "truncated.warc.gz").write_bytes(  # the second gzip member is cut half-way
        warc_bytes([("https://cut.example/a", page("Cut A"), "text/html")]) + second[: len(second) // 2])
    bad = warc_bytes([
        ("https://bad.example/utf8", bytes(range(128, 256)) * 40, "text/html; charset=utf-8"),
        ("https://bad.example/empty", b"", "text/html"),
        ("https://bad.example/binary", b"\x89PNG\r\n\x1a\n" + bytes(300), "image/png"),
        ("https://bad.example/huge", b"<html><body>" + b"word " * (4 * 1024 * 1024 + 100) + b"</body></html>",
         "text/html"),
    ])
    (src / "bad.warc.gz").write_bytes(bad)
    broken = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: not-a-number\r\n\r\nxxxx\r\n\r\n"
    (src / "broken.warc").write_bytes(broken + gzip.decompress(warc_bytes([("https://after.example/x", page("After"),
                                                                            "text/html")])))
    (src / "lines.jsonl").write_text(json.dumps({"id": "j1", "text": PROSE}) + "\n{not json\n"
                                     + json.dumps({"id": "j2", "text": PROSE + " More."}) + "\n")

    out = tmp_path / "out"
    cfg = config([str(src)], str(out))
    cfg.stages = ["extract", "langid", "pii", "dedup"]  # this test is about reading; filters have their own
    result = run_curation(cfg)
    con = duckdb.connect()
    ledger = con.execute(f"SELECT url, stage, reason, source FROM read_parquet('{out}/rejected/*.parquet')").fetchall()
    reasons = {(r[0] or os.path.basename(r[3]), r[2]) for r in ledger}
    for expected in [("https://bad.example/utf8", "invalid_encoding"), ("https://bad.example/empty", "empty"),
                     ("https://bad.example/binary", "binary_content"), ("https://bad.example/huge", "too_large")]:
        assert expected in reasons, (expected, reasons)
    assert any(reason == "truncated_gzip" for _, reason in reasons)
    assert any(reason == "bad_warc_record" for _, reason in reasons)
    assert any(reason == "bad_json" for _, reason in reasons)
    kept = con.execute(f"SELECT url, id FROM read_parquet('{out}/docs/*.parquet')").fetchall()
    # every readable page carries the same prose (titles differ): they form one MinHash cluster, and exactly
    # one survives (the smallest WARC record id, which warcio draws at random when the file is written)
    readable = ["https://good.example/0", "https://good.example/1", "https://good.example/2",
                "https://cut.example/a", "https://after.example/x"]
    assert len(kept) == 1 and kept[0][0] in readable + [""]
    dups = {u for u, reason in reasons if reason in ("near_duplicate", "exact_duplicate")}
    assert (set(readable) - {kept[0][0]}) <= dups
    assert result.funnel["totals"]["kept"] + result.funnel["totals"]["rejected"] == result.funnel["totals"]["read"]
    assert len(kept) + len(ledger) == result.funnel["totals"]["read"]


def source_listing(lines: int) -> bytes:
    """Generated markup like a rustdoc source view: thousands of <span>s that keep trafilatura busy."""
    body = "\n".join(f'<a href="#{i}" id="{i}">{i}</a><span class="kw">pub fn</span> <span class="ident">f{i}</span>'
                     '(<span class="ident">a</span>: <span class="ty">u32</span>) '
                     f'{{ <span class="number">{i}</span> }}'
                     for i in range(lines))
    return f"<html><body><main><pre><code>{body}</code></pre></main></body></html>".encode()


def test_a_page_past_the_extraction_time_limit_goes_to_the_ledger(tmp_path):
    """A page that takes ~0.5 s against a 0.05 s limit is dropped as "timeout" inside a Beam worker process."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "pages.warc.gz").write_bytes(warc_bytes(
        [(f"https://good.example/{i}", page(f"Good page {i}") + f"<p>Page {i} of {PROSE}</p>".encode() * i, "text/html")
         for i in range(1, 4)] + [("https://slow.example/listing", source_listing(2000), "text/html")]))
    out = tmp_path / "out"
    cfg = config([str(src)], str(out), workers=1, mode="multi_processing")
    cfg.stages = ["extract", "langid"]
    cfg.extract.engine = "trafilatura"  # the engine such markup keeps busy (resiliparse takes milliseconds)
    cfg.extract.timeout_s = 0.05
    result = run_curation(cfg)
    con = duckdb.connect()
    ledger = con.execute(f"SELECT url, stage, reason, detail FROM read_parquet('{out}/rejected/*.parquet')").fetchall()
    assert [(u, st, r) for u, st, r, _ in ledger] == [("https://slow.example/listing", "extract", "timeout")]
    assert "extract.timeout_s" in ledger[0][3]
    kept = sorted(u for (u,) in con.execute(f"SELECT url FROM read_parquet('{out}/docs/*.parquet')").fetchall())
    assert kept == [f"https://good.example/{i}" for i in range(1, 4)]
    assert result.funnel["totals"]["kept"] + result.funnel["totals"]["rejected"] == result.funnel["totals"]["read"]


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {f"{sub}/{p.name}": p.read_bytes() for sub in ("docs",
                                                          "rejected") for p in sorted((out / sub).glob("*.parquet"))}


def test_killed_run_rerun_gives_identical_output(tmp_path, capfd):
    subset = [str(SAMPLE_DIR / "sample-00000.warc.gz")]
    reference = tmp_path / "reference"
    run_curation(config(subset, str(reference)))  # uninterrupted, one in-process worker
    expected = shard_bytes(reference)
    assert expected

    out = tmp_path / "killed"
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text(f'[input]\npaths = {json.dumps(subset)}\n[output]\nhistograms = false\n'
                        '[runner]\nworkers = 2\nprogress = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "run", str(cfg_file), "--output", str(out)],
                            start_new_session=True, cwd=Path(__file__).parents[1],  # this checkout's assay
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = out / ".staging"  # one folder per run: .staging/<run id>/
    deadline = time.time() + 120
    while time.time() < deadline and not any(staging.glob("*/progress/extract.*.json")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker processes
    proc.wait()
    assert not (out / "docs").exists(), "a killed run must not publish shards"
    (killed_run,) = staging.iterdir()

    cfg = config(subset, str(out), workers=2, mode="multi_processing")
    run_curation(cfg)
    assert shard_bytes(out) == expected
    assert not (out / ".staging").exists()
    notes = capfd.readouterr().err
    assert f"removed {killed_run}: left by a run that did not finish" in notes
    assert f"took over the lock of {out} from run pid {proc.pid}" in notes


class SlowOnMarkedDocs(Stage):
    """A stage whose Python loop runs ~forever on documents that ask for it, like a filter on a pathological page."""

    name = "slow_filter"

    def process(self, doc: Document) -> Document:
        if "SLOW" in doc.text:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pass
        return doc


def test_a_document_past_the_stage_time_limit_goes_to_the_ledger_and_the_rest_flow_on():
    """runner.stage_timeout_s bounds each per-document stage, not only extraction: a Beam pipeline with a stage
    that would spin for 30 s on one document drops it as "timeout" after 0.3 s and keeps the others."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from assay.pipelines.job.steps import PerDocument, StepContext

    docs = [Document(id=f"d{i}", text=f"fine document {i}", source="t") for i in range(4)]
    docs.insert(2, Document(id="slow", text="a SLOW one", source="t"))
    start = time.monotonic()
    with beam.Pipeline() as p:
        kept, [rejected] = PerDocument(SlowOnMarkedDocs()).expand(p | beam.Create(docs),
                                                                  StepContext(stage_timeout_s=0.3))
        assert_that(kept | "ids" >> beam.Map(lambda d: d.id), equal_to([f"d{i}" for i in range(4)]), label="kept")
        assert_that(rejected | "why" >> beam.Map(lambda r: (r.id, r.stage, r.reason, "stage_timeout_s" in r.detail)),
                    equal_to([("slow", "slow_filter", "timeout", True)]), label="rejected")
    assert time.monotonic() - start < 20


def test_stage_time_limit_config_is_checked():
    from assay.pipelines.job.runner import RunnerConfig

    assert RunnerConfig().stage_timeout_s == 120.0
    with pytest.raises(ValueError, match="stage_timeout_s: must be >= 0"):
        RunnerConfig(stage_timeout_s=-1)
