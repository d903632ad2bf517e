"""`assay mix`: from curated document pools to token shards, following a data recipe.

recipe.py (the recipe and its validation) -> pools.py (pool files, DuckDB counts, tokenizer sample) ->
tokenize_beam.py (Beam: held-out split, tokenize + EOS, staging into staged.py's files) -> sampling.py
(documents per phase to meet budgets) -> pack.py (pack, shuffle, write with assay.trainer.token_shards);
build.py runs them in order, table.py prints the budget tables.

The names below are the mix's public API: the ablation and the CLI use these and nothing else. From the rest
of assay/pipelines/ the mix uses only assay.pipelines.job (its Beam runner).
"""
from assay.pipelines.mix.build import MixReport, PoolReport, run_mix
from assay.pipelines.mix.pools import (
                                 PoolFiles,
                                 count_pool,
                                 is_heldout,
                                 pool_files,
                                 pool_query,
                                 pools_connection,
                                 pools_fingerprint,
                                 resolve_pools,
)
from assay.pipelines.mix.recipe import (
                                 MixRunnerConfig,
                                 PhaseSpec,
                                 PoolSpec,
                                 Recipe,
                                 TokenizerSpec,
                                 load_recipe,
                                 recipe_dict,
                                 recipe_hash,
                                 validate,
)
from assay.pipelines.mix.sampling import BudgetError
from assay.pipelines.mix.table import budget_rows, render

__all__ = [
    "BudgetError", "MixReport", "MixRunnerConfig", "PhaseSpec", "PoolFiles", "PoolReport", "PoolSpec", "Recipe",
    "TokenizerSpec", "budget_rows", "count_pool", "is_heldout", "load_recipe", "pool_files", "pool_query",
    "pools_connection", "pools_fingerprint", "recipe_dict", "recipe_hash", "render", "resolve_pools", "run_mix",
    "validate",
]
