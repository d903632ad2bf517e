"""Token shards per resolved recipe, built once: a cache folder whose manifest has the recipe's hash and
passes the reader's integrity check is reused, so cells (and plans) sharing a recipe share its mix."""
from __future__ import annotations

import glob
import json
import os

from pipelines.mix.recipe import Recipe, recipe_hash


def cached_mix(cache: str, digest: str) -> str | None:
    """A finished token-shard folder in `cache` built from the recipe with hash `digest`, if any."""
    from trainer.token_shards import MANIFEST_FILE, TokenShardError, TokenShardReader

    for manifest in sorted(glob.glob(os.path.join(cache, "*", MANIFEST_FILE))):
        try:
            with open(manifest, encoding="utf-8") as fh:
                if json.load(fh).get("recipe_hash") != digest:
                    continue
            folder = os.path.dirname(manifest)
            TokenShardReader(folder, verify=True)
            return folder
        except (OSError, ValueError, TokenShardError):
            continue  # unreadable or damaged: rebuilt below
    return None


def ensure_mix(recipe: Recipe, cache: str, label: str, console=None) -> tuple[str, bool]:
    """(token-shard folder for `recipe`, whether it was built now). Raises the mix's ConfigError /
    BudgetError / TokenizerError when a pool is missing or too small."""
    from pipelines.mix.build import run_mix

    digest = recipe_hash(recipe)
    found = cached_mix(cache, digest)
    if found:
        return found, False
    folder = os.path.join(cache, f"{label}-{digest[:16]}")
    run_mix(recipe, output=folder, progress=console is not None, console=console)
    return folder, True
