"""A data recipe: pools (shard directory + DuckDB predicate), phases (token budget + pool weights), and how to
tokenize and pack. Every default is defined here; validation errors name the field at fault.

Example (see recipes/sample.toml and docs/mix.md):
    seed = 0
    seq_len = 512
    [pools.web]
    source = "out/demo"
    predicate = "true"
    [[phases]]
    name = "phase1"
    tokens = 100000
    weights = { web = 1.0 }
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from groundwork.config import ConfigError, from_dict, load_toml, to_dict

POOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
RUNNER_MODES = ("multi_processing", "in_memory", "multi_threading")


@dataclass
class TokenizerSpec:
    """Load `path` (a local tokenizer.json) when given, else train a byte-level BPE on a sample of the pools."""

    path: str = ""
    vocab_size: int = 8192
    sample_docs: int = 5000  # per pool, chosen by a seeded hash of the id
    min_frequency: int = 2


@dataclass
class PoolSpec:
    """A pool: the documents of `source` (a curation output or a directory of Parquet shards) that match
    `predicate` (DuckDB SQL over the shard columns). `max_repeats` is how many times each document may be
    used in the whole mix (1 = never repeated). An `optional` pool whose source has no shards is skipped
    with a warning and the phases that use it share its weight among their other pools."""

    source: str = ""
    predicate: str = "true"
    max_repeats: int = 1
    optional: bool = False


@dataclass
class PhaseSpec:
    """One training phase: `tokens` packed tokens, drawn from pools in proportion to `weights`."""

    name: str = ""
    tokens: int = 0
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class RunnerSpec:
    """Beam's FnApiRunner (local, no network): worker count, mode, and rows of a shard file per work item.

    Threads by default: the work is DuckDB reads and Rust tokenization, which both release the GIL, and
    worker processes cost seconds of start-up each run."""

    workers: int = 2
    mode: str = "multi_threading"
    rows_per_task: int = 2000


@dataclass
class Recipe:
    seed: int = 0
    seq_len: int = 512
    heldout_fraction: float = 0.01  # of each pool, by content hash; never trained on
    sequences_per_shard: int = 8192
    output: str = "out/mix"
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    runner: RunnerSpec = field(default_factory=RunnerSpec)
    pools: dict[str, PoolSpec] = field(default_factory=dict)
    phases: list[PhaseSpec] = field(default_factory=list)


def load_recipe(path: str) -> Recipe:
    """Parse and validate a recipe TOML file; ConfigError messages start with the file and field."""
    data = load_toml(path)
    try:
        recipe = from_dict(Recipe, data)
        validate(recipe)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return recipe


def validate(recipe: Recipe) -> None:
    if recipe.seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {recipe.seed}")
    if recipe.seq_len < 1:
        raise ConfigError(f"seq_len: must be >= 1, got {recipe.seq_len}")
    if not 0.0 <= recipe.heldout_fraction < 0.5:
        raise ConfigError(f"heldout_fraction: must be in [0, 0.5), got {recipe.heldout_fraction}")
    if recipe.sequences_per_shard < 1:
        raise ConfigError(f"sequences_per_shard: must be >= 1, got {recipe.sequences_per_shard}")
    tok = recipe.tokenizer
    if not tok.path and tok.vocab_size <= 260:
        raise ConfigError(f"tokenizer.vocab_size: must be > 260 (256 bytes + 4 special tokens), got {tok.vocab_size}")
    if tok.sample_docs < 1:
        raise ConfigError(f"tokenizer.sample_docs: must be >= 1, got {tok.sample_docs}")
    if recipe.runner.mode not in RUNNER_MODES:
        raise ConfigError(f"runner.mode: expected one of {list(RUNNER_MODES)}, got {recipe.runner.mode!r}")
    if recipe.runner.workers < 1:
        raise ConfigError(f"runner.workers: must be >= 1, got {recipe.runner.workers}")
    if recipe.runner.rows_per_task < 1:
        raise ConfigError(f"runner.rows_per_task: must be >= 1, got {recipe.runner.rows_per_task}")
    if not recipe.pools:
        raise ConfigError("pools: define at least one pool, e.g. [pools.web] source = \"out/demo\"")
    for name, pool in recipe.pools.items():
        if not POOL_NAME.match(name):
            raise ConfigError(f"pools.{name}: pool names may use letters, digits, '_', '-' and '.' only")
        if not pool.source:
            raise ConfigError(f"pools.{name}.source: required: a curation output or a directory of Parquet shards")
        if not pool.predicate.strip():
            raise ConfigError(f"pools.{name}.predicate: empty; use \"true\" to take every document")
        if pool.max_repeats < 1:
            raise ConfigError(f"pools.{name}.max_repeats: must be >= 1 (1 = no repeats), got {pool.max_repeats}")
    if not recipe.phases:
        raise ConfigError("phases: define at least one [[phases]] table with name, tokens and weights")
    seen: set[str] = set()
    for i, phase in enumerate(recipe.phases):
        where = f"phases[{i}]"
        if not phase.name:
            raise ConfigError(f"{where}.name: required")
        if phase.name in seen:
            raise ConfigError(f"{where}.name: phase {phase.name!r} is defined twice")
        seen.add(phase.name)
        if phase.tokens < 1:
            raise ConfigError(f"{where}.tokens: must be >= 1, got {phase.tokens}")
        if not phase.weights:
            raise ConfigError(f"{where}.weights: give at least one pool weight, e.g. {{ web = 1.0 }}")
        for pool, weight in phase.weights.items():
            if pool not in recipe.pools:
                raise ConfigError(f"{where}.weights.{pool}: no pool named {pool!r}; defined: {sorted(recipe.pools)}")
            if not weight > 0:
                raise ConfigError(f"{where}.weights.{pool}: must be > 0, got {weight} (drop the pool instead)")


def recipe_dict(recipe: Recipe) -> dict:
    """The recipe as recorded in the manifest and hashed: everything that decides the tokens (not the output
    path or the runner settings, so the same recipe gives the same bytes however it is run)."""
    data = to_dict(recipe)
    data.pop("output")
    data.pop("runner")
    return data


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the canonical JSON of the resolved recipe (defaults included)."""
    return hashlib.sha256(json.dumps(recipe_dict(recipe), sort_keys=True).encode("utf-8")).hexdigest()
