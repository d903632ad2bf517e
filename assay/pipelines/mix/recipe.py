"""A data recipe: pools (shard directory + DuckDB predicate), phases (token budget + pool weights), and how to
tokenize and pack. Every default is defined here; each table checks its own values, `validate` the recipe as
a whole (at least one pool and phase, weights naming defined pools); errors name the field at fault.

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

from assay.groundwork.config import ConfigError, FieldError, from_dict, load_config, to_dict
from assay.pipelines.job.runner import RunnerConfig
from assay.trainer.tokenizer import VOCAB_FLOOR, VOCAB_FLOOR_REASON

POOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class TokenizerSpec:
    """Load `path` (a local tokenizer.json) when given, else train a byte-level BPE on a sample of the pools."""

    path: str = ""  # a local tokenizer.json to use as-is; "" trains one
    vocab_size: int = 8192  # tokens of the trained vocabulary, the bytes and special tokens included
    sample_docs: int = 5000  # per pool, chosen by a seeded hash of the id
    min_frequency: int = 2  # times a pair must occur in the sample to be merged (the `tokenizers` BPE trainer's)

    def __post_init__(self) -> None:
        if not self.path and self.vocab_size <= VOCAB_FLOOR:
            raise FieldError("vocab_size", f"must be > {VOCAB_FLOOR} ({VOCAB_FLOOR_REASON}), got {self.vocab_size}")
        if self.sample_docs < 1:
            raise FieldError("sample_docs", f"must be >= 1, got {self.sample_docs}")


@dataclass
class PoolSpec:
    """A pool: the documents of `source` (a curation output or a directory of Parquet shards) that match
    `predicate` (DuckDB SQL over the shard columns). `max_repeats` is how many times each document may be
    used in the whole mix (1 = never repeated). An `optional` pool whose source has no shards is skipped
    with a warning and the phases that use it share its weight among their other pools."""

    source: str = ""  # a curation output or a directory of Parquet shards
    predicate: str = "true"  # DuckDB SQL over the shard columns; "true" takes every document
    max_repeats: int = 1  # uses of each document in the whole mix (1 = never repeated)
    optional: bool = False  # skip the pool, with a warning, when its source has no shards

    def __post_init__(self) -> None:
        if not self.source:
            raise FieldError("source", "required: a curation output or a directory of Parquet shards")
        if not self.predicate.strip():
            raise FieldError("predicate", "empty; use \"true\" to take every document")
        if self.max_repeats < 1:
            raise FieldError("max_repeats", f"must be >= 1 (1 = no repeats), got {self.max_repeats}")


@dataclass
class PhaseSpec:
    """One training phase: `tokens` packed tokens, drawn from pools in proportion to `weights`."""

    name: str = ""  # the phase's name in the token shards' manifest, which records its sequence range
    tokens: int = 0  # packed tokens of the phase
    weights: dict[str, float] = field(default_factory=dict)  # pool name -> its share of the tokens (normalised)

    def __post_init__(self) -> None:
        if not self.name:
            raise FieldError("name", "required")
        if self.tokens < 1:
            raise FieldError("tokens", f"must be >= 1, got {self.tokens}")
        if not self.weights:
            raise FieldError("weights", "give at least one pool weight, e.g. { web = 1.0 }")
        for pool, weight in self.weights.items():
            if not weight > 0:
                raise FieldError(f"weights.{pool}", f"must be > 0, got {weight} (drop the pool instead)")


@dataclass
class MixRunnerConfig(RunnerConfig):
    """The Beam runner of the tokenize step, plus rows of a shard file per work item.

    Threads by default: the work is DuckDB reads and Rust tokenization, which both release the GIL, and
    worker processes cost seconds of start-up each run."""

    mode: str = "multi_threading"  # local runner only; threads, for the reasons above
    rows_per_task: int = 2000  # rows of one shard file read and tokenized as one work item

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rows_per_task < 1:
            raise FieldError("rows_per_task", f"must be >= 1, got {self.rows_per_task}")


@dataclass
class Recipe:
    """The whole recipe: what decides the tokens (seed, lengths, tokenizer, pools, phases) and where they go."""

    seed: int = 0  # seeds the tokenizer sample, the order of each pool's documents and the packed rows' order
    seq_len: int = 512  # tokens per packed training sequence
    heldout_fraction: float = 0.01  # of each pool, by content hash; never trained on
    sequences_per_shard: int = 8192  # packed sequences per output shard file
    output: str = "out/mix"  # the output folder (its manifest, tokenizer and token shards)
    #: the mix's licence as its dataset card (README.md) declares it, a Hugging Face licence id such as "odc-by";
    #: "" records "other". Not part of the recipe hash: it does not change the tokens
    license: str = ""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)  # the tokenizer to load or train
    runner: MixRunnerConfig = field(default_factory=MixRunnerConfig)  # how the tokenize step runs
    pools: dict[str, PoolSpec] = field(default_factory=dict)  # name -> the documents it draws from
    phases: list[PhaseSpec] = field(default_factory=list)  # the training phases, in order

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise FieldError("seed", f"must be >= 0, got {self.seed}")
        if self.seq_len < 1:
            raise FieldError("seq_len", f"must be >= 1, got {self.seq_len}")
        if not 0.0 <= self.heldout_fraction < 0.5:
            raise FieldError("heldout_fraction", f"must be in [0, 0.5), got {self.heldout_fraction}")
        if self.sequences_per_shard < 1:
            raise FieldError("sequences_per_shard", f"must be >= 1, got {self.sequences_per_shard}")
        for name in self.pools:
            if not POOL_NAME.match(name):
                raise FieldError(f"pools.{name}", "pool names may use letters, digits, '_', '-' and '.' only")
        seen: set[str] = set()
        for i, phase in enumerate(self.phases):
            if phase.name in seen:
                raise FieldError(f"phases[{i}].name", f"phase {phase.name!r} is defined twice")
            seen.add(phase.name)


def load_recipe(path: str) -> Recipe:
    """Parse and validate a recipe TOML file; ConfigError messages start with the file and field."""
    return load_config(Recipe, path, build=lambda data: validate(from_dict(Recipe, data)))


def validate(recipe: Recipe) -> Recipe:
    """The recipe as a whole (each table checked its own fields): at least one pool and phase, and every
    phase's weights name defined pools. Returns the recipe."""
    if not recipe.pools:
        raise ConfigError("pools: define at least one pool, e.g. [pools.web] source = \"out/demo\"")
    if not recipe.phases:
        raise ConfigError("phases: define at least one [[phases]] table with name, tokens and weights")
    for i, phase in enumerate(recipe.phases):
        for pool in phase.weights:
            if pool not in recipe.pools:
                raise ConfigError(f"phases[{i}].weights.{pool}: no pool named {pool!r}; "
                                  f"defined: {sorted(recipe.pools)}")
    return recipe


def recipe_dict(recipe: Recipe) -> dict:
    """The recipe as recorded in the manifest and hashed: everything that decides the tokens (not the output
    path or the runner settings, so the same recipe gives the same bytes however it is run)."""
    data = to_dict(recipe)
    data.pop("output")
    data.pop("runner")
    data.pop("license")
    return data


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the canonical JSON of the resolved recipe (defaults included)."""
    return hashlib.sha256(json.dumps(recipe_dict(recipe), sort_keys=True).encode("utf-8")).hexdigest()
