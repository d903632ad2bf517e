"""What the default pipeline keeps of real web pages it never saw, judged by each page's rubric rating.

The real-web corpus's pages come from public repositories and are never committed, so this is a benchmark run
from local clones rather than a test: it rebuilds the corpus (scripts/build_realweb_corpus.py, joining the
committed ratings in data/realweb/labels.jsonl), runs `assay evaluate` on the held-out eval split (and on train
with --train, for reference only: the classifiers learned from it), and prints the real-web issue's goals
next to the measured values. Record the result, machine and date in docs/quality.md.

    .venv/bin/python benchmarks/realweb_quality.py --clones /path/to/clones [--out out/realweb-bench] [--train]
    (--clones: one folder per repository named owner+name, as the search tool's fetch leaves them)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: (what, report path, bound, direction): the real-web issue's goals on held-out sources
GOALS = [("kept pages that score >= 3", ("rubric", "precision"), 0.70, ">="),
         ("pages scoring >= 3 kept", ("rubric", "recall"), 0.80, ">="),
         ("pages scoring 0-1 kept", ("rubric", "low_kept", "kept_share"), 0.05, "<="),
         ("ephemeral pages kept", ("rubric", "ephemeral_kept", "kept_share"), 0.10, "<=")]


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clones", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "out", "realweb-bench"))
    parser.add_argument("--train", action="store_true", help="also evaluate the train split (for reference)")
    args = parser.parse_args(argv)
    corpus = os.path.join(args.out, "corpus")
    run([sys.executable, "scripts/build_realweb_corpus.py", "--clones", args.clones, "--out", corpus])
    splits = ["eval", "train"] if args.train else ["eval"]
    print(f"date {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; "
          f"machine {os.cpu_count()} cores, {platform.platform()}")
    for split in splits:
        report_dir = os.path.join(args.out, f"report-{split}")
        run([os.path.join(os.path.dirname(sys.executable), "assay"), "evaluate", "--corpus",
             os.path.join(corpus, split), "--keep", "explainer", "--out", report_dir])
        report = json.load(open(os.path.join(report_dir, "quality.json")))
        print(f"\n{split} split ({report['rubric']['rated']} rated pages, base rate {report['rubric']['base_rate']}):")
        print("| goal | target | measured | met |\n|---|---|---:|---|")
        for what, path, bound, op in GOALS:
            value = report
            for key in path:
                value = value[key]
            met = value >= bound if op == ">=" else value <= bound
            print(f"| {what} | {op} {bound} | {value:.3f} | {'yes' if met else 'NO'} |")
        for source, row in report["rubric"]["by_source"].items():
            print(f"  {source}: {row}")


if __name__ == "__main__":
    main()
