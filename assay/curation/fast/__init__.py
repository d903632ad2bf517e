"""The wing of assay/curation/ that re-implements spaCy's and datatrove's internals for speed, with their decisions:
spaCy's word split without spaCy's objects (spacy_rules, spacy_words, regex_chars, word_cache), datatrove's
Gopher and C4 filters' statistics (filters, ngram_stats) and MinHash shingles (shingles).

Each module follows a pinned version of its original (pyproject.toml: spacy, datatrove), and
tests/test_pinned_originals.py compares them with the originals on fixed texts, so an upgrade that changes a
decision fails loudly; tests/test_fast_filters.py and tests/test_spacy_words.py compare them on whole corpora.
"""
