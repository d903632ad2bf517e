"""`assay ablate`: decide a data choice by training small proxy models on each recipe.

plan.py (the plan file and its validation) -> cells.py (recipe x size x seed, budgets, compute) ->
mixcache.py (token shards per resolved recipe, reused by recipe hash and pool-data fingerprint) ->
evalsets.py (held-out documents shared by every recipe, scored per checkpoint) -> runner.py (train +
evaluate each cell, resumable) ->
stats.py (mean and 95% CI over seeds, Welch differences, signal-to-noise, scaling fits, rankings) ->
decisions.py (per metric: SNR, the decision with its interval, agreement across sizes, compute) ->
report.py + plots.py (Markdown, JSON, PNG);
lineage.py says where every number came from.
"""
