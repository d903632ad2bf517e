"""`assay mix`: from curated document pools to token shards, following a data recipe.

recipe.py (the recipe and its validation) -> pools.py (pool files, DuckDB counts, tokenizer sample) ->
tokenize_beam.py (Beam: held-out split, tokenize + EOS, staging) -> sampling.py (documents per phase to meet
budgets) -> pack.py (pack, shuffle, write with trainer.token_shards) ; build.py runs them in order.
"""
