"""Token shards per resolved recipe, built once: a cache folder whose manifest has the recipe's hash, whose
pools file has the pools' current data fingerprint, and which passes the reader's integrity check is reused,
so cells (and plans) sharing a recipe share its mix, and a rebuilt pool gets a new mix."""
from __future__ import annotations

import glob
import hashlib
import json
import os

from assay.groundwork.atomic import write_json_atomic
from assay.pipelines.mix import Recipe, pools_fingerprint, recipe_hash, run_mix

POOLS_FILE = "pools.json"  # beside the mix's manifest: the data fingerprint of the pools it was built from


def cached_mix(cache: str, digest: str, data: str = "") -> str | None:
    """A finished token-shard folder in `cache` built from the recipe with hash `digest` over pools whose data
    fingerprint was `data`, if any."""
    from assay.trainer.token_shards import ShardFolder, TokenShardError, TokenShardReader

    for folder in sorted(glob.glob(os.path.join(cache, "*"))):
        if not ShardFolder.is_finished(folder):
            continue
        try:
            if ShardFolder(folder).manifest.get("recipe_hash") != digest:
                continue
            with open(os.path.join(folder, POOLS_FILE), encoding="utf-8") as fh:
                if json.load(fh).get("pools_fingerprint") != data:
                    continue
            TokenShardReader(folder, verify=True)
            return folder
        except (OSError, ValueError, TokenShardError):
            continue  # unreadable or damaged: rebuilt below
    return None


def ensure_mix(recipe: Recipe, cache: str, label: str, console=None) -> tuple[str, bool]:
    """(token-shard folder for `recipe`, whether it was built now). Raises the mix's ConfigError /
    BudgetError / TokenizerError when a pool is missing or too small."""
    digest, data = recipe_hash(recipe), pools_fingerprint(recipe)
    found = cached_mix(cache, digest, data)
    if found:
        return found, False
    key = hashlib.sha256(f"{digest}\0{data}".encode()).hexdigest()
    folder = os.path.join(cache, f"{label}-{key[:16]}")
    run_mix(recipe, output=folder, progress=console is not None, console=console)
    write_json_atomic({"recipe_hash": digest, "pools_fingerprint": data}, os.path.join(folder, POOLS_FILE),
                      indent=1, sort_keys=False)
    return folder, True
