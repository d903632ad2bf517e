"""`assay run` end to end on Beam's local runner and on a Dask cluster, the same pipeline and pages, with the
quality of what each keeps printed next to its speed.

Corpus (default): the committed held-out quality corpus, data/quality/eval (825 distinct real pages as WARC,
labelled; docs/quality.md). Sides, run interleaved (local dask local dask ...) `--repeats` times, each a
fresh `assay run` of the default pipeline (every stage, dedup and the shipped classifiers included) with
`--workers` worker processes:

  local   Beam's FnApiRunner, worker processes (runner = "local", the default)
  dask    Beam's DaskRunner on a local dask.distributed cluster of `--workers` processes, one thread each,
          started for the run (its start is timed apart and also included in the run's time)

Printed per side: median docs/s over the whole run (pages read / seconds), the ratio against the local
runner, the Dask cluster's start-up, and the quality of the kept set scored as `assay evaluate` scores it
(pages kept, edu precision / recall / F1); then whether every side kept the same documents with the same
text and wrote the same ledger.

    .venv/bin/python benchmarks/runner_throughput.py [--corpus data/quality/eval] [--workers 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_side(side: str, corpus_dir: str, workers: int, out: str) -> tuple[float, float]:
    """(seconds of the whole run, seconds the Dask cluster took to start, 0 for local)."""
    from assay.pipelines.curate.config import CurateConfig
    from assay.pipelines.curate.job import run_curation
    from assay.pipelines.job.dask_cluster import local_cluster
    from assay.pipelines.quality.corpus import load_corpus

    cfg = CurateConfig()
    cfg.input.paths = load_corpus(corpus_dir).warc_files
    cfg.output.histograms = False
    cfg.runner.workers, cfg.runner.progress = workers, False
    start = time.perf_counter()
    if side == "local":
        run_curation(cfg, output=out)
        return time.perf_counter() - start, 0.0
    with local_cluster(workers) as address:
        started = time.perf_counter() - start
        cfg.runner.runner = "dask"
        cfg.runner.beam_args = [f"--dask_client_address={address}"]
        run_curation(cfg, output=out)
    return time.perf_counter() - start, started


def quality(corpus_dir: str, out: str) -> dict:
    from assay.pipelines.quality.corpus import load_corpus
    from assay.pipelines.quality.metrics import EvalSettings, score
    from assay.pipelines.quality.outcome import read_merges, read_outcomes

    report = score(load_corpus(corpus_dir), read_outcomes(out), EvalSettings(), read_merges(out))
    return {"kept": report.keep_metrics["kept_pages"], **{k: report.keep_metrics[k] for k in
                                                           ("precision", "recall", "f1")}}


def content(out: str) -> tuple[list, list]:
    import duckdb

    docs = duckdb.sql(f"SELECT id, text FROM read_parquet('{out}/docs/*.parquet') ORDER BY id").fetchall()
    ledger = duckdb.sql(f"SELECT id, stage, reason, detail FROM read_parquet('{out}/rejected/*.parquet') "
                        "ORDER BY ALL").fetchall()
    return docs, ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "quality", "eval"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sides", default="local,dask")
    args = parser.parse_args()

    from assay.pipelines.quality.corpus import load_corpus

    pages = len(load_corpus(args.corpus).pages)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    scratch = tempfile.mkdtemp(prefix="assay-runner-bench-")
    try:
        report(args, sides, pages, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args, sides: list[str], pages: int, scratch: str) -> None:
    from benchmarks.curation_throughput import machine

    seconds: dict[str, list[float]] = {s: [] for s in sides}
    startup: dict[str, list[float]] = {s: [] for s in sides}
    outs = {}
    for r in range(args.repeats):
        for side in sides:
            out = os.path.join(scratch, f"{side}-{r}")
            took, started = run_side(side, args.corpus, args.workers, out)
            seconds[side].append(took)
            startup[side].append(started)
            outs[side] = out
            print(f"  repeat {r + 1} {side}: {took:.1f} s", flush=True)

    print(f"\n`assay run` on {args.corpus}: {pages} distinct pages, {args.workers} workers, {args.repeats} interleaved "
          f"repeats, {datetime.date.today()}, {machine()}")
    base = pages / statistics.median(seconds[sides[0]])
    print(f"{'side':<8}{'docs/s':>9}{'ratio':>8}{'start s':>9}{'kept':>7}{'edu P':>8}{'edu R':>8}{'edu F1':>8}")
    for side in sides:
        rate = pages / statistics.median(seconds[side])
        q = quality(args.corpus, outs[side])
        print(f"{side:<8}{rate:>9.2f}{rate / base:>8.2f}{statistics.median(startup[side]):>9.1f}{q['kept']:>7}"
              f"{q['precision']:>8.3f}{q['recall']:>8.3f}{q['f1']:>8.3f}")
    reference = content(outs[sides[0]])
    same = all(content(outs[side]) == reference for side in sides[1:])
    print(f"same kept documents and ledger on every side: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
