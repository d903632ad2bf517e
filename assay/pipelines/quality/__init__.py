"""`assay evaluate`: run a curation config on a labelled corpus and measure what it keeps.

corpus.py reads the labelled pages (WARC files plus manifest.jsonl), outcome.py reads what a run kept and
dropped, metrics.py turns the two into per-category keep rates, precision/recall/F1, false drops and dedup
recall per Jaccard bin, report.py writes Markdown, JSON and a plot, and gates.py checks `--min-*` bounds.
"""
