"""Choose the "assay" filter profile's thresholds on the TRAIN split of the quality corpus.

Why: datatrove's defaults were tuned for generic web text; documentation (code, tables, definition lists,
repeated API signatures) trips them. This script extracts every train page once (resiliparse, prose view,
language ID as the default pipeline does), then, for each datatrove filter and each candidate argument set,
prints the share of English edu pages it keeps next to the share of English non-edu pages (nav, ephemeral,
spam, mail, chatter) it drops, and of nav and ephemeral pages on their own (what assay's page filters
target). The chosen rows are the assay profile in assay/curation/filters.py; the table is in docs/quality.md.
Never run it on the eval split: that would tune on the pages the goals are measured on.

Run:  .venv/bin/python scripts/tune_filter_thresholds.py [--corpus data/quality/train]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from assay.curation.document import Rejection  # noqa: E402
from assay.curation.filters import filter_stage  # noqa: E402
from assay.pipelines.quality.corpus import english_pages, load_corpus  # noqa: E402

GOPHER_DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
GOPHER_TOP_NGRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))


def _scaled(pairs, factor):
    return tuple((n, round(min(frac * factor, 0.95), 3)) for n, frac in pairs)


CANDIDATES = {
    "release_notes": [("title or heading names release notes", {})],
    "link_density": [(f"max_link_share {t}, min_words {w}", {"max_link_share": t, "min_words": w})
                     for t in (0.3, 0.4, 0.5, 0.6) for w in (0, 150, 300, 10**9)],
    "gopher_repetition": [
        ("datatrove defaults", {}),
        *[(f"dup_line_frac {t}, n-gram fractions x{f}", {"dup_line_frac": t, "dup_para_frac": t,
                                                         "dup_line_char_frac": t * 2 / 3,
                                                          "dup_para_char_frac": t * 2 / 3,
                                                         "dup_n_grams": _scaled(GOPHER_DUP_NGRAMS, f),
                                                         "top_n_grams": _scaled(GOPHER_TOP_NGRAMS, f)})
          for t, f in ((0.3, 1.5), (0.4, 2.0))],
    ],
    "gopher_quality": [
        ("datatrove defaults", {}),
        ("max_non_alpha_words_ratio 0.7", {"max_non_alpha_words_ratio": 0.7}),
        ("0.7, max_symbol_word_ratio 0.2", {"max_non_alpha_words_ratio": 0.7, "max_symbol_word_ratio": 0.2}),
    ],
    "fineweb_quality": [
        ("datatrove defaults", {}),
        *[(f"char_duplicates_ratio {c}", {"char_duplicates_ratio": c}) for c in (0.05, 0.1)],
        ("char_duplicates_ratio 0.1, line_punct_thr 0.05", {"char_duplicates_ratio": 0.1, "line_punct_thr": 0.05}),
    ],
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(REPO_ROOT, "data", "quality", "train"))
    args = parser.parse_args(argv)
    if os.path.basename(os.path.normpath(args.corpus)) == "eval":
        sys.exit("tune on the train split only: the eval split is where the goals are measured")
    docs = [(page.category, doc) for page, doc in english_pages(load_corpus(args.corpus))]
    totals = Counter(kind for kind, _ in docs)
    other = sum(n for kind, n in totals.items() if kind != "edu")
    print(f"{len(docs)} English pages after extraction and language ID: {dict(totals)}\n")
    print("| filter | arguments | edu kept | non-edu dropped | nav dropped | ephemeral dropped |\n"
          "|---|---|---:|---:|---:|---:|")
    for name, variants in CANDIDATES.items():
        for label, params in variants:
            stage = filter_stage(name, params, view="prose")
            dropped = Counter(kind for kind, doc in docs if isinstance(stage(doc), Rejection))
            print(f"| {name} | {label} | {1 - dropped['edu'] / totals['edu']:.3f} | "
                  f"{sum(n for k, n in dropped.items() if k != 'edu') / other:.3f} | "
                  f"{dropped['nav'] / totals['nav']:.3f} | {dropped['ephemeral'] / totals['ephemeral']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
