"""Documents per second of assay's per-document curation stages against datatrove, with the quality of what
each side keeps printed next to its speed.

Corpus (default): the committed held-out quality corpus, data/quality/eval (825 distinct real pages:
documentation, navigation, changelogs, spam, mail, quotes, translations, duplicates; docs/quality.md), each page
once, written as `--files` JSONL files that every side reads. `--sample` uses the embedded sample's 429 pages
repeated with distinct ids up to `--docs` instead (a secondary row only: later copies find every word in the
word cache), `--html-dir DIR` distinct .html files from a folder (no labels, no quality columns).

Sides, each on `--workers` worker processes, run interleaved (A B C A B C ...) `--repeats` times:

  datatrove          datatrove's default pipeline: LocalPipelineExecutor(tasks=workers, workers=workers),
                     JsonlReader, its Trafilatura extractor (sandboxed), a LambdaFilter calling fastText on the
                     same lid.176.ftz, the four filters with FineWeb's arguments, MinhashDedupSignature
  assay              assay's default per-document stages in a Beam pipeline on the local FnApiRunner
                     (multi_processing): resiliparse extraction, language ID on the prose view, the "assay"
                     filter profile (page filters, then datatrove's filters on the prose view, with assay's
                     statistics), MinHash band keys
  assay-trafilatura  the same Beam pipeline doing datatrove's work with assay's code: trafilatura, language ID
                     on the whole text, FineWeb's filters and arguments (the "fineweb" profile) with assay's
                     statistics (filters.statistics = "assay": the same decisions as datatrove's classes)
  assay-trafilatura-dt  (not run by default) the same with datatrove's filter classes (the "fineweb" profile
                     as it is)

Language ID keeps "en" with score >= 0.65; MinHash is 5-grams, 14 bands x 8 rows; nothing is written on the
assay side but the kept ids (datatrove writes its small signature files and the kept ids). Both extractors get
the same per-page time limit (`--extract-timeout`, 60 s). Each timing is the whole run (worker start-up
included). Printed per side: median docs/s, the ratio against datatrove, pages kept, and on a labelled corpus
edu precision / recall / F1 of the kept set and the share kept of each category (scored as `assay evaluate`
scores, without dedup and classifiers: this benchmark covers the per-document stages).

    .venv/bin/python benchmarks/curation_throughput.py [--corpus data/quality/eval] [--repeats 2] [--workers 2]
    .venv/bin/python benchmarks/curation_throughput.py --sample --docs 2145
    .venv/bin/python benchmarks/curation_throughput.py --sides assay --repeats 1 --stages --scaling --memory

`--stages` times each stage in one process (where a worker's time goes), `--scaling` runs the assay side
with 1 and 2 workers in fresh processes (`--repeats` times, interleaved, median), on the corpus and on it repeated
`--scaling-times` (10) times with distinct ids (a run's fixed start-up weighs less there), next to the machine's
own ceiling (a pure-Python loop in 1 and 2 processes), `--memory` measures its
worker's peak RSS on the corpus and on the corpus repeated 10x with distinct ids (memory must stay flat
outside the dedup shuffle, which this per-document benchmark does not run).
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


def sample_pages() -> list[tuple[str, str, str]]:
    """(id, url, html) of the embedded sample's HTML pages."""
    from assay.curation.document import Document
    from assay.curation.readers import ReaderConfig, read_input

    pages = [(d.id, d.url, d.text) for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "*.warc.gz")))
             for d in read_input(path, ReaderConfig()) if isinstance(d, Document) and d.mime == "text/html"]
    if not pages:
        raise SystemExit("no HTML pages found under data/sample/: the embedded sample corpus is missing")
    return pages


def folder_pages(folder: str, n_docs: int) -> list[tuple[str, str, str]]:
    """(path, path, html) of `n_docs` distinct .html files under `folder`, spread evenly over its sorted file list."""
    paths = sorted(glob.glob(os.path.join(folder, "**", "*.html"), recursive=True))
    paths = [p for p in paths if os.path.getsize(p) > 0]
    if len(paths) < n_docs:
        raise SystemExit(f"--html-dir {folder} holds {len(paths)} non-empty .html files; --docs asks for {n_docs}")
    step = len(paths) / n_docs
    pages = []
    for path in (paths[int(i * step)] for i in range(n_docs)):
        with open(path, "rb") as fh:
            rel = os.path.relpath(path, folder)
            pages.append((rel, rel, fh.read().decode("utf-8", "replace")))
    return pages


def labelled_pages(corpus_dir: str):
    """(corpus, [(record id, url, html)]) of a labelled quality corpus (WARC + manifest.jsonl), each page once."""
    from assay.pipelines.quality.corpus import labelled_documents, load_corpus

    corpus = load_corpus(corpus_dir)
    return corpus, [(doc.id, doc.url, doc.text) for _, doc in labelled_documents(corpus)]


def write_corpus(pages: list[tuple[str, str, str]], n_docs: int, n_files: int, folder: str) -> None:
    """`pages` ((id, url, html); repeated with distinct ids when n_docs exceeds them), round-robin over
    `n_files` JSONL files."""
    os.makedirs(folder, exist_ok=True)
    handles = [open(os.path.join(folder, f"pages-{i:03d}.jsonl"), "w", encoding="utf-8") for i in range(n_files)]
    try:
        for i in range(n_docs):
            rid, url, html = pages[i % len(pages)]
            doc_id = rid if n_docs <= len(pages) else f"doc-{i:07d}"
            handles[i % n_files].write(json.dumps({"id": doc_id, "text": html, "url": url}) + "\n")
    finally:
        for fh in handles:
            fh.close()


def read_ids(folder: str) -> set[str]:
    ids: set[str] = set()
    for path in glob.glob(os.path.join(folder, "*")):
        with open(path, encoding="utf-8") as fh:
            ids.update(line.strip() for line in fh if line.strip())
    return ids


# ---------------------------------------------------------------------------------------------- assay side

#: the assay sides: (extract.engine, langid.view, filters.profile, filters.statistics)
ASSAY_SIDES = {"assay": ("resiliparse", "prose", "assay", ""),
               "assay-trafilatura": ("trafilatura", "text", "fineweb", "assay"),
               "assay-trafilatura-dt": ("trafilatura", "text", "fineweb", "datatrove")}


def assay_stages(side: str, timeout: float = 60.0, cache_words: int | None = None) -> list:
    """The side's per-document stages, in order (extraction, language ID, filters)."""
    from assay.curation.extract import ExtractConfig, ExtractText
    from assay.curation.filters import FilterConfig, build_filter_stages
    from assay.curation.langid import IdentifyLanguage, LangIdConfig

    engine, view, profile, statistics = ASSAY_SIDES[side]
    lid = LangIdConfig(languages=LANGUAGES, threshold=LID_THRESHOLD, max_chars=LID_MAX_CHARS, view=view)
    filters = FilterConfig(profile=profile, statistics=statistics, stats=False)
    if cache_words is not None:
        filters.tokenizer_cache_words = cache_words
    return [ExtractText(ExtractConfig(engine=engine, timeout_s=timeout)), IdentifyLanguage(lid)] + \
        build_filter_stages(filters)


def stage_times(corpus: str, side: str, timeout: float = 60.0) -> list[tuple[str, float, int, int]]:
    """(stage, seconds, documents in, documents out) for each stage, one process, no Beam: where a worker's
    time goes. Each document goes through the stages in turn, as in the fused Beam chain (so the filters of one
    document share its word split); models and rules are loaded first, as a worker's setup does. MinHash band
    keys of the kept documents are the last row."""
    from assay.curation.dedup import MinHashConfig, MinHasher
    from assay.curation.document import Document

    stages = assay_stages(side, timeout)
    docs = []
    for path in sorted(glob.glob(os.path.join(corpus, "*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                docs.append(Document(id=row["id"], text=row["text"], url=row["url"], mime="text/html"))
    for stage in stages:
        stage.setup()
    hasher = MinHasher(MinHashConfig())
    hasher.band_keys("a first text to load what MinHash needs before the clock runs")
    names = [stage.name for stage in stages] + ["minhash"]
    seconds, n_in, n_out = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for doc in docs:
        for stage in stages:
            n_in[stage.name] += 1
            start = time.perf_counter()
            res = stage.process(doc)
            seconds[stage.name] += time.perf_counter() - start
            if not isinstance(res, Document):
                break
            n_out[stage.name] += 1
            doc = res
        else:
            n_in["minhash"] += 1
            start = time.perf_counter()
            hasher.band_keys(doc.text)
            seconds["minhash"] += time.perf_counter() - start
            n_out["minhash"] += 1
    return [(name, seconds[name], n_in[name], n_out[name]) for name in names]


def child_measure(corpus: str, workers: int, side: str, timeout: float) -> dict:
    """Run one assay pass in a fresh process and report its time and the peak RSS of its largest worker (a
    process's children's maxrss covers only its own descendants, so each measurement needs its own)."""
    import subprocess

    code = ("import json, resource, sys; sys.path.insert(0, %r); sys.argv = ['bench']\n"
            "import benchmarks.curation_throughput as b\n"
            "s, k = b.run_assay(%r, %d, %r, %r, None, %r)\n"
            "print(json.dumps({'seconds': s, 'kept': k, "
            "'worker_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
            "'driver_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
            % (ROOT, corpus, workers, side, os.path.join(os.path.dirname(corpus), f"ids-child-{side}-{workers}"),
               timeout))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=7200)
    if out.returncode != 0:
        raise SystemExit(f"measurement run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_assay(corpus: str, workers: int, side: str, ids_dir: str, cache_words: int | None = None,
              timeout: float = 60.0) -> tuple[float, int]:
    """(seconds, documents that reached MinHash) for the Beam pipeline over the JSONL files; the ids of those
    documents are written under `ids_dir`."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter

    from assay.curation.dedup import MinHashConfig, MinHasher
    from assay.curation.readers import ReaderConfig
    from assay.pipelines.job.beam_fns import REJECTED, ReadFn
    from assay.pipelines.job.runner import RunnerConfig, build_options
    from assay.pipelines.job.steps import PerDocument, StepContext

    class BandKeys(beam.DoFn):
        """Counts the documents that reach MinHash and the band keys they produce; yields their ids."""

        def setup(self) -> None:
            self.hasher = MinHasher(MinHashConfig())
            self.docs = Metrics.counter("bench", "minhash_docs")
            self.keys = Metrics.counter("bench", "band_keys")

        def process(self, doc):
            self.docs.inc()
            self.keys.inc(len(self.hasher.band_keys(doc.text)))
            yield doc.id

    stages = assay_stages(side, timeout, cache_words)
    files = sorted(glob.glob(os.path.join(corpus, "*.jsonl")))
    shutil.rmtree(ids_dir, ignore_errors=True)
    runner, options = build_options(RunnerConfig(workers=workers, mode="multi_processing"))
    start = time.perf_counter()
    p = beam.Pipeline(runner=runner, options=options)
    read = (p | "files" >> beam.Create(files) | "spread" >> beam.Reshuffle()
            | "read" >> beam.ParDo(ReadFn(ReaderConfig(format="jsonl"))).with_outputs(REJECTED, main="docs"))
    # the JSONL reader marks text as plain; these lines hold HTML pages
    html = read.docs | "as_html" >> beam.Map(lambda d: d.with_text(d.text, mime="text/html"))
    kept, _ = PerDocument(*stages).expand(html, StepContext())
    _ = (kept | "minhash" >> beam.ParDo(BandKeys())
         | "ids" >> beam.io.WriteToText(os.path.join(ids_dir, "kept")))
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


class RecordIds:
    """LambdaFilter body that keeps every document and appends its id to a file of this worker process."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, doc) -> bool:
        with open(os.path.join(self.folder, f"kept-{os.getpid()}"), "a", encoding="utf-8") as fh:
            fh.write(f"{doc.id}\n")
        return True


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


def run_datatrove(corpus: str, workers: int, scratch: str, ids_dir: str, timeout: float = 60.0) -> tuple[float, int]:
    """(seconds, documents that reached MinHash) for LocalPipelineExecutor over the same JSONL files; the ids of
    those documents are written under `ids_dir`."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline import filters as dt
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import JsonlReader

    from assay.curation.dedup import MinHashConfig
    from assay.curation.filters import FilterConfig
    from assay.curation.langid import bundled_lid_model

    ours = MinHashConfig()
    kw = FilterConfig(profile="fineweb").kwargs_for
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(ids_dir, ignore_errors=True)
    os.makedirs(ids_dir)
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(corpus, glob_pattern="*.jsonl"),
            Trafilatura(favour_precision=False, deduplicate=False, include_tables=True, timeout=timeout),
            dt.LambdaFilter(FastTextLanguageKeep(bundled_lid_model())),
            dt.GopherRepetitionFilter(**kw("gopher_repetition")),
            dt.GopherQualityFilter(**kw("gopher_quality")),
            dt.C4QualityFilter(**kw("c4_quality")),
            dt.FineWebQualityFilter(**kw("fineweb_quality")),
            dt.LambdaFilter(RecordIds(ids_dir)),
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

def _spin(_: int) -> float:
    """Seconds for a fixed pure-Python loop: the machine's own per-process speed, nothing of assay."""
    start, acc = time.perf_counter(), 0
    for i in range(20_000_000):
        acc += i * i % 7
    return time.perf_counter() - start


def cpu_ceiling(repeats: int) -> float:
    """How much faster 2 processes do a CPU-bound loop than 1 on this machine (median of `repeats`): the most a
    2-worker run can gain here, whatever the pipeline does (on a shared virtual machine it is often below 2)."""
    import multiprocessing

    ratios = []
    for _ in range(repeats):
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            one = pool.map(_spin, [0])[0]
            two = max(pool.map(_spin, [0, 1]))
        ratios.append(2 * one / two)
    return statistics.median(ratios)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def quality(corpus, kept_ids: set[str]) -> dict:
    """edu precision / recall / F1 of the kept set and the share kept per category, as `assay evaluate` scores."""
    from assay.pipelines.quality.metrics import EvalSettings, score
    from assay.pipelines.quality.outcome import KEPT, Outcome

    dropped = Outcome("dropped", "a per-document stage")
    report = score(corpus, {p.record_id: Outcome(KEPT) if p.record_id in kept_ids else dropped
                            for p in corpus.pages}, EvalSettings())
    return {"keep": report.keep_metrics, "kept_share": {c: r["kept_share"] for c, r in report.categories.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "quality", "eval"),
                        help="a labelled quality corpus (WARC + manifest.jsonl), each page once (the default)")
    parser.add_argument("--sample", action="store_true",
                        help="the embedded sample's 429 pages repeated up to --docs instead (no labels)")
    parser.add_argument("--html-dir", default=None,
                        help="--docs distinct .html files from this folder (searched recursively, spread over "
                             "its sorted list) instead (no labels)")
    parser.add_argument("--docs", type=int, default=2145, help="documents, with --sample or --html-dir")
    parser.add_argument("--sides", default="datatrove,assay,assay-trafilatura",
                        help="comma-separated sides to run: datatrove, " + ", ".join(ASSAY_SIDES))
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side; the median is kept")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on each side")
    parser.add_argument("--files", type=int, default=8, help="JSONL files the corpus is split into")
    parser.add_argument("--extract-timeout", type=float, default=60.0,
                        help="seconds one page may take in extraction, on every side (a slower page is dropped)")
    parser.add_argument("--tokenizer-cache-words", type=int, default=None,
                        help="assay's filters.tokenizer_cache_words (default: the config default; 0 turns the "
                             "word cache off)")
    parser.add_argument("--stages", action="store_true",
                        help="also time each assay stage in one process (no Beam): seconds, ms/doc, docs in/out")
    parser.add_argument("--scaling", action="store_true",
                        help="also run the assay side with 1 and 2 workers (fresh processes): docs/s, efficiency")
    parser.add_argument("--scaling-times", type=int, default=10,
                        help="--scaling also runs the corpus repeated this many times with distinct ids (1: only "
                             "the corpus)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the assay side's peak worker RSS (1 worker) on the corpus and on it "
                             "repeated 10x with distinct ids")
    args = parser.parse_args()
    sides = [x.strip() for x in args.sides.split(",") if x.strip()]
    unknown = [x for x in sides if x != "datatrove" and x not in ASSAY_SIDES]
    if unknown or not sides:
        parser.error(f"--sides: unknown {unknown}; choose from datatrove, {', '.join(ASSAY_SIDES)}")
    if args.docs < 1 or args.repeats < 1 or args.workers < 1 or args.files < 1:
        parser.error("--docs, --repeats, --workers and --files must be >= 1")
    logging.disable(logging.WARNING)
    from loguru import logger

    logger.remove()  # datatrove logs every step in the parent process; its workers' stderr goes to a file

    folder = tempfile.mkdtemp(prefix="assay-curation-bench-")
    try:
        corpus_dir = os.path.join(folder, "corpus")
        labelled = None
        if args.html_dir:
            pages, n_docs = folder_pages(args.html_dir, args.docs), args.docs
            source = f"distinct pages from {args.html_dir}"
        elif args.sample:
            pages, n_docs = sample_pages(), args.docs
            source = f"{len(pages)} distinct sample pages, repeated"
        else:
            labelled, pages = labelled_pages(args.corpus)
            n_docs = len(pages)
            source = f"distinct labelled pages of {os.path.relpath(args.corpus, ROOT)}"
        write_corpus(pages, n_docs, args.files, corpus_dir)
        print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; machine {machine()}")
        print(f"{n_docs} documents ({source}) in {args.files} JSONL files; {args.workers} workers per side; "
              f"{args.repeats} interleaved repeats, median reported")
        rates: dict[str, list[float]] = {side: [] for side in sides}
        kept: dict[str, int] = {}
        kept_ids: dict[str, set[str]] = {}
        for rep in range(args.repeats):
            for side in sides:
                ids_dir = os.path.join(folder, "ids", side)
                if side == "datatrove":
                    seconds, n_kept = run_datatrove(corpus_dir, args.workers, os.path.join(folder, "datatrove"),
                                                     ids_dir, args.extract_timeout)
                else:
                    seconds, n_kept = run_assay(corpus_dir, args.workers, side, ids_dir, args.tokenizer_cache_words,
                                                args.extract_timeout)
                rates[side].append(n_docs / seconds)
                kept[side], kept_ids[side] = n_kept, read_ids(ids_dir)
                print(f"  run {rep + 1} {side:17} {seconds:7.1f} s  {n_docs / seconds:7.2f} docs/s  kept {n_kept}",
                      flush=True)
        base = statistics.median(rates["datatrove"]) if "datatrove" in rates else None
        cats = sorted({p.category for p in labelled.pages}) if labelled else []
        print()
        print("| " + " | ".join(["side", "docs/s", "x datatrove", "kept", "edu P", "edu R", "edu F1", *cats]) + " |")
        print("|---|" + "---:|" * (6 + len(cats)))
        for side in sides:
            rate = statistics.median(rates[side])
            ratio = f"{rate / base:.2f}" if base else "-"
            cells = [side, f"{rate:.2f}", ratio, str(kept[side])]
            if labelled:
                q = quality(labelled, kept_ids[side])
                cells += [f"{q['keep']['precision']:.3f}", f"{q['keep']['recall']:.3f}", f"{q['keep']['f1']:.3f}"]
                cells += [f"{q['kept_share'][c]:.2f}" for c in cats]
            else:
                cells += ["-", "-", "-"]
            print("| " + " | ".join(cells) + " |")
        if labelled:
            print("\nkept shares per category of the labelled corpus; edu recall counts a page and its copies at "
                  "Jaccard >= 0.7 once (no dedup runs here)")
        extra = [x for x in sides if x != "datatrove"]
        if args.stages:
            for side in extra:
                rows = stage_times(corpus_dir, side, args.extract_timeout)
                total = sum(r[1] for r in rows)
                print(f"\nper stage, {side} (one process, {n_docs} documents; {total:.1f} s in all)")
                print("| stage | s | ms/doc in | share | in | out |\n|---|---:|---:|---:|---:|---:|")
                for name, sec, n_in, n_out in rows:
                    print(f"| {name} | {sec:.2f} | {1000 * sec / max(n_in, 1):.2f} | {100 * sec / total:.0f}% "
                          f"| {n_in} | {n_out} |")
        if args.scaling:
            side = extra[0] if extra else "assay"
            ceiling = cpu_ceiling(max(3, args.repeats))
            print(f"\nthis machine's ceiling: a pure-Python loop runs {ceiling:.2f}x as fast in 2 processes as in 1 "
                  f"(median of {max(3, args.repeats)})")
            corpora = [(corpus_dir, n_docs)]
            if args.scaling_times > 1:  # a larger run: the ~3 s a run costs before its first document weighs less
                larger = os.path.join(folder, f"corpus-{args.scaling_times}x-scaling")
                write_corpus(pages, args.scaling_times * n_docs, args.files, larger)
                corpora.append((larger, args.scaling_times * n_docs))
            for corpus, docs in corpora:
                seconds = {1: [], 2: []}
                for _ in range(args.repeats):  # interleaved, like the sides
                    for workers in (1, 2):
                        seconds[workers].append(child_measure(corpus, workers, side, args.extract_timeout)["seconds"])
                r1, r2 = docs / statistics.median(seconds[1]), docs / statistics.median(seconds[2])
                runs = "; ".join(f"{w} worker{'s' if w > 1 else ''} " + " / ".join(f"{t:.1f}" for t in seconds[w])
                                 + " s" for w in (1, 2))
                print(f"\nscaling, {side}, {docs} documents: 1 worker {r1:.2f} docs/s, 2 workers {r2:.2f} docs/s: "
                      f"{r2 / r1:.2f}x (efficiency {100 * r2 / (2 * r1):.0f}%, {100 * r2 / r1 / ceiling:.0f}% of the "
                      "machine's "
                      f"ceiling; {os.cpu_count()} cores; median of "
                      f"{args.repeats} interleaved runs: {runs})")
        if args.memory:
            side = extra[0] if extra else "assay"
            big = os.path.join(folder, "corpus-10x")
            write_corpus(pages, 10 * n_docs, args.files, big)
            small_m = child_measure(corpus_dir, 1, side, args.extract_timeout)
            big_m = child_measure(big, 1, side, args.extract_timeout)
            growth = big_m["worker_rss_mb"] / small_m["worker_rss_mb"] - 1
            print(f"\npeak RSS of the worker, {side}, 1 worker: {small_m['worker_rss_mb']:.0f} MB on {n_docs} "
                  f"documents, {big_m['worker_rss_mb']:.0f} MB on {10 * n_docs} ({100 * growth:+.1f}%); "
                  f"driver {small_m['driver_rss_mb']:.0f} / {big_m['driver_rss_mb']:.0f} MB; "
                  f"{10 * n_docs / big_m['seconds']:.2f} docs/s on the 10x corpus")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
