"""Documents per second of assay's input readers against datatrove's readers, same files, same run.

Corpus: `--docs` synthetic HTML pages (words drawn from a fixed vocabulary, ~`--words` words each, seeded),
written three ways: a per-record-gzip WARC (warcio), a zstd JSONL and a Parquet file. Each format is read
in full, single process, by
  assay      assay.curation.readers.read_input (charset handling, size limits, quarantine of bad records)
  datatrove  WarcReader / JsonlReader / ParquetReader (LocalPipelineExecutor's per-task reader)
and the script prints docs/s for each and assay/datatrove. Best of `--repeats` runs.

    .venv/bin/python benchmarks/reader_throughput.py [--docs 3000] [--words 800] [--repeats 3]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pages(n: int, words: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(20_000)]
    return [(f"https://bench.example/{i}",
             "<html><head><title>page %d</title></head><body><p>%s</p></body></html>"
             % (i, " ".join(rng.choices(vocab, k=words)))) for i in range(n)]


def write_corpus(docs: list[tuple[str, str]], folder: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    for fmt in ("warc", "jsonl", "parquet"):
        os.makedirs(os.path.join(folder, fmt))
    with open(os.path.join(folder, "warc", "pages.warc.gz"), "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, html in docs:
            body = html.encode()
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                               ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    lines = "".join(json.dumps({"id": str(i), "text": html, "url": url}) + "\n" for i, (url, html) in enumerate(docs))
    with open(os.path.join(folder, "jsonl", "pages.jsonl.zst"), "wb") as fh:
        fh.write(zstandard.ZstdCompressor().compress(lines.encode()))
    pq.write_table(pa.table({"id": [str(i) for i in range(len(docs))], "text": [h for _, h in docs],
                             "url": [u for u, _ in docs]}), os.path.join(folder, "parquet", "pages.parquet"))


def best_rate(fn, repeats: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return count / best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--words", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader
    from loguru import logger

    logger.remove()  # datatrove logs every file it opens

    from assay.curation.document import Document
    from assay.curation.readers import ReaderConfig, read_input

    with tempfile.TemporaryDirectory() as folder:
        write_corpus(pages(args.docs, args.words), folder)
        files = {"warc": "pages.warc.gz", "jsonl": "pages.jsonl.zst", "parquet": "pages.parquet"}
        peers = {"warc": lambda d: WarcReader(d), "jsonl": lambda d: JsonlReader(d, compression="zstd"),
                 "parquet": lambda d: ParquetReader(d)}
        print(f"{args.docs} pages of ~{args.words} words; single process; best of {args.repeats}")
        print(f"{'format':8} {'assay docs/s':>13} {'datatrove docs/s':>17} {'ratio':>6}")
        for fmt, name in files.items():
            path = os.path.join(folder, fmt, name)

            def assay() -> int:
                return sum(isinstance(item, Document) for item in read_input(path, ReaderConfig()))

            def datatrove() -> int:
                return sum(1 for _ in peers[fmt](os.path.join(folder, fmt)).run(None, 0, 1))

            ours, n_ours = best_rate(assay, args.repeats)
            theirs, n_theirs = best_rate(datatrove, args.repeats)
            assert n_ours == n_theirs == args.docs, (fmt, n_ours, n_theirs)
            print(f"{fmt:8} {ours:13.0f} {theirs:17.0f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
