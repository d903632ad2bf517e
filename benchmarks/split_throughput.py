"""`assay run` on ONE large JSONL file with 1 and with 2 workers: what work units (byte ranges of one file,
docs/readers.md "Work units") give, against the same file read as one unit (how `assay run` read it before).

Corpus: the committed held-out quality corpus (data/quality/eval, 825 distinct real pages: documentation,
navigation, changelogs, spam, mail, quotes, translations, duplicates; docs/quality.md), each page's main text
extracted once with assay's extract stage (a JSONL dump holds text, not HTML), repeated with distinct ids up to
`--docs` and written as ONE JSONL file. Repeated pages find their words in the filters' word cache, so the
per-page work is somewhat lighter than on distinct pages; every side reads the same file.

Sides, run interleaved (A B C A B C ...) `--repeats` times, each a fresh `assay run` process (the CLI) of the
stages `--stages` (default: every per-document stage and dedup; `--stages all` adds the shipped classifiers), on
the local runner in multi_processing mode:

  1-worker          --workers 1, the file in work units (reader.unit_bytes default, at least 4 units per worker)
  2-workers         --workers 2, the file in work units
  2-workers-whole   --workers 2, reader.unit_bytes = 0: the file is one unit (as before work units; the peer)

Printed per side: median seconds of the whole run (start-up included), docs/s, and "CPU total/busiest": the
CPU seconds of all worker processes over those of the busiest one (sampled from /proc), i.e. the speedup the
split of the work allows on a machine with a free core per worker (2.0 = two equal halves, 1.0 = one worker did
everything; on a shared machine the wall clock shows less); then the ratios 2-workers / 1-worker (goal >= 1.6x,
issue #33) and 2-workers / 2-workers-whole, and whether every side wrote the same shard bytes.

    .venv/bin/python benchmarks/split_throughput.py [--docs 20000] [--repeats 1] [--stages ...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIDES = {"1-worker": (1, None), "2-workers": (2, None), "2-workers-whole": (2, 0)}
DEFAULT_STAGES = ["extract", "langid", "filters", "pii", "dedup"]


def page_texts(corpus_dir: str) -> list[tuple[str, str]]:
    """(url, main text) of each labelled page with text, extracted by assay's extract stage."""
    from assay.curation.document import Document
    from assay.curation.extract import ExtractText
    from benchmarks.curation_throughput import labelled_pages

    _, pages = labelled_pages(corpus_dir)
    extractor = ExtractText()
    extractor.setup()

    texts = []
    for rid, url, html in pages:
        out = extractor.process(Document(id=rid, text=html, url=url, mime="text/html"))
        if isinstance(out, Document) and out.text.strip():
            texts.append((url, out.text))
    return texts


def write_one_jsonl(texts: list[tuple[str, str]], n_docs: int, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n_docs):
            url, text = texts[i % len(texts)]
            fh.write(json.dumps({"id": f"doc-{i:07d}", "text": text, "url": f"{url}#{i}"}) + "\n")




def worker_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of each Beam worker process under `root` (its children and theirs)."""
    from assay.pipelines.job.watchdog import WORKER_MARK  # how the local runner's workers are told apart

    tick = os.sysconf("SC_CLK_TCK")
    parents, stats = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            parents[int(entry)] = int(fields[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            if WORKER_MARK in cmdline and not cmdline.startswith(b"/bin/sh"):  # not the shell that starts it
                stats[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue

    def under_root(pid: int) -> bool:
        for _ in range(4):
            pid = parents.get(pid, 0)
            if pid == root:
                return True
        return False

    return {pid: cpu for pid, cpu in stats.items() if under_root(pid)}


def run_side(side: str, jsonl: str, stages: list[str], out: str) -> tuple[float, list[float]]:
    """(seconds of the whole run, CPU seconds of each worker process)."""
    workers, unit_bytes = SIDES[side]
    cfg = os.path.join(os.path.dirname(out), f"{side}.toml")
    reader = f"\n[input.reader]\nunit_bytes = {unit_bytes}\n" if unit_bytes is not None else "\n"
    with open(cfg, "w") as fh:
        fh.write(f"stages = {json.dumps(stages)}\n[input]\npaths = {json.dumps([jsonl])}\n{reader}"
                 f"[output]\nhistograms = false\n[runner]\nworkers = {workers}\nmode = \"multi_processing\"\n"
                 "progress = false\n")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "run", cfg, "-o", out], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cpu: dict[int, float] = {}
    while proc.poll() is None:  # sampled twice a second: a worker's last half second may be missed
        cpu.update(worker_cpu(proc.pid))
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{side}: assay run failed:\n{proc.stderr.read()[-3000:]}")
    return seconds, sorted(cpu.values(), reverse=True)


def shard_bytes(out: str) -> dict[str, bytes]:
    found = {}
    for sub in ("docs", "rejected"):
        folder = os.path.join(out, sub)
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as fh:
                found[f"{sub}/{name}"] = fh.read()
    return found


def main() -> None:
    from benchmarks.curation_throughput import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "quality", "eval"))
    parser.add_argument("--docs", type=int, default=20_000, help="pages in the one JSONL file")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help="comma-separated `assay run` stages, or 'all' (default: %(default)s)")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated, of: " + ", ".join(SIDES))
    args = parser.parse_args()
    from assay.pipelines.curate.config import STAGES

    stages = list(STAGES) if args.stages == "all" else args.stages.split(",")
    sides = args.sides.split(",")
    with tempfile.TemporaryDirectory(prefix="assay-split-") as scratch:
        jsonl = os.path.join(scratch, "pages.jsonl")
        texts = page_texts(args.corpus)
        write_one_jsonl(texts, args.docs, jsonl)
        size = os.path.getsize(jsonl)
        distinct = min(len(texts), args.docs)
        print(f"{datetime.date.today()} | {machine()} | one JSONL of {args.docs} pages ({distinct} distinct "
              f"texts), {size / 2**20:.1f} MiB | stages {','.join(stages)} | repeats {args.repeats}", flush=True)
        times: dict[str, list[float]] = {s: [] for s in sides}
        balance: dict[str, list[float]] = {s: [] for s in sides}
        outputs: dict[str, dict[str, bytes]] = {}
        for r in range(args.repeats):
            for side in sides:
                out = os.path.join(scratch, f"out-{side}-{r}")
                seconds, cpu = run_side(side, jsonl, stages, out)
                times[side].append(seconds)
                balance[side].append(sum(cpu) / cpu[0] if cpu and cpu[0] else 0.0)
                print(f"  {side:16s} run {r + 1}: {seconds:7.1f} s, worker CPU s {[round(c, 1) for c in cpu]}",
                      flush=True)
                outputs.setdefault(side, shard_bytes(out))
                shutil.rmtree(out, ignore_errors=True)
        median = {s: statistics.median(t) for s, t in times.items()}
        # total worker CPU / the busiest worker's: the wall-clock speedup the workers' split of the work allows
        # on a machine with a free core per worker (a shared machine gives less)
        print(f"\n{'side':16s} {'seconds':>8s} {'docs/s':>8s} {'CPU total/busiest':>18s}")
        for side in sides:
            print(f"{side:16s} {median[side]:8.1f} {args.docs / median[side]:8.1f} "
                  f"{statistics.median(balance[side]):18.2f}")
        if "1-worker" in median and "2-workers" in median:
            speedup = median["1-worker"] / median["2-workers"]
            print(f"\n2 workers vs 1 worker on one file: {speedup:.2f}x (goal >= 1.6x)")
        if "2-workers-whole" in median and "2-workers" in median:
            print(f"2 workers, file in units vs one unit: {median['2-workers-whole'] / median['2-workers']:.2f}x")
        first = next(iter(outputs.values()))
        same = all(o == first for o in outputs.values())
        print(f"same shard bytes on every side: {same}")


if __name__ == "__main__":
    main()
