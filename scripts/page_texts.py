"""Cache the text the classifier stage sees for every page of labelled corpora: one JSONL row per English page.

Why: comparing classifiers and choosing thresholds re-reads the same pages many times; extraction and language
ID take minutes per corpus. Each row holds the page's labels (category, rubric score and durability where
rated, source, split) and the extracted text, exactly as `assay run` extracts it (ExtractText, IdentifyLanguage
with the default settings).

  .venv/bin/python scripts/page_texts.py data/quality/train ~/.cache/assay-realweb/train --out out/texts.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from assay.groundwork.atomic import atomic_path  # noqa: E402
from assay.pipelines.quality.corpus import english_pages, load_corpus  # noqa: E402


def rows(corpus_dir: str):
    corpus = load_corpus(corpus_dir)
    name = os.path.basename(os.path.normpath(corpus_dir))
    for page, doc in english_pages(corpus):
        yield {"record_id": page.record_id, "corpus": corpus_dir, "split": name, "source": page.source,
               "category": page.category, "edu_score": page.edu_score, "durable": page.durable, "url": page.url,
               "text": doc.text}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for corpus_dir in args.corpora:
            n = 0
            for row in rows(corpus_dir):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
            print(f"{corpus_dir}: {n} English pages", file=sys.stderr)


if __name__ == "__main__":
    main()
