"""An ablation plan: which recipes to compare, at which proxy sizes and token budgets, with how many seeds,
and how to score them. Every default lives here; validation errors name the field at fault.

Example (see plans/sample_demo.toml and docs/ablate.md):
    name = "edu-vs-web"
    seeds = [0, 1, 2]
    [recipes.web]
    path = "recipes/ablate/web.toml"
    [[sizes]]
    name = "s1"
    preset = "mini-1m"
    tokens = 200000
    [eval.sets.web]
    source = "out/demo"
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

from groundwork.config import ConfigError, from_dict, load_toml

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: TrainConfig fields the ablation sets per cell; a plan may not override them.
RESERVED_TRAIN = ("data", "out_dir", "seed", "max_steps", "stop_after", "checkpoint_every", "keep_checkpoints",
                  "eval_every")
HIGHER_IS_BETTER = ("acc", "acc_norm")


@dataclass
class RecipeRef:
    """A phase-scheduler recipe in the plan. `label` is shown next to the name (e.g. "stand-in: heuristic
    thresholds"); `needs` says what must exist for the recipe to run and how to produce it."""

    path: str = ""
    label: str = ""
    needs: str = ""


@dataclass
class SizeSpec:
    """A proxy size: a trainer preset plus field overrides, and the training tokens of each cell."""

    name: str = ""
    preset: str = "mini-1m"
    tokens: int = 0
    model: dict[str, Any] = field(default_factory=dict)


@dataclass
class MixSettings:
    """Applied to every recipe so the cells are comparable: the same sequence length, the same held-out
    rule (the shared eval sets are exactly the documents every recipe holds out) and tokenizer size."""

    seq_len: int = 64
    heldout_fraction: float = 0.05
    vocab_size: int = 1024
    workers: int = 2
    mode: str = "multi_threading"


@dataclass
class EvalSet:
    """Held-out documents of `source` matching `predicate` (DuckDB SQL), scored as loss and bits-per-byte."""

    source: str = ""
    predicate: str = "true"


@dataclass
class EvalSettings:
    sets: dict[str, EvalSet] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)  # cloze task files (trainer format) or "mmlu"
    task_limit: int = 200
    max_docs: int = 64  # per eval set
    points: int = 4  # checkpoints evaluated per cell (for the eval-vs-tokens curves), the last included
    primary: str = ""  # metric that ranks recipes and feeds the scaling fit; default: first set's bits_per_byte


@dataclass
class Plan:
    name: str = "ablation"
    output: str = "out/ablate"
    mix_cache: str = ""  # token-shard cache shared across plans; default <output>/mixes
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # torch CPU threads while the plan runs; 0 = torch's default. Tiny proxies on a busy 2-core machine run
    # many times faster on 1 thread (no spin-waiting between threads); results do not depend on it.
    torch_threads: int = 0
    recipes: dict[str, RecipeRef] = field(default_factory=dict)
    sizes: list[SizeSpec] = field(default_factory=list)
    train: dict[str, Any] = field(default_factory=dict)  # trainer [train] overrides shared by every cell
    mix: MixSettings = field(default_factory=MixSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    @property
    def primary_metric(self) -> str:
        return self.eval.primary or f"{next(iter(self.eval.sets))}.bits_per_byte"


def higher_is_better(metric: str) -> bool:
    return metric.rsplit(".", 1)[-1] in HIGHER_IS_BETTER


def load_plan(path: str) -> Plan:
    """Parse and validate a plan TOML file; ConfigError messages start with the file and field."""
    data = load_toml(path)
    try:
        plan = from_dict(Plan, data)
        validate(plan)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return plan


def train_defaults() -> dict[str, Any]:
    """The ablation's [train] defaults (tiny proxies on CPU), before the plan's overrides."""
    return dict(micro_batch=8, grad_accum=1, lr=3e-3, warmup_steps=5, schedule="cosine", progress=False,
                log_every=1)


def validate(plan: Plan) -> None:
    from trainer.config import ConfigError as TrainerConfigError
    from trainer.config import ModelConfig, TrainConfig
    from trainer.presets import PRESETS

    if not NAME.match(plan.name):
        raise ConfigError(f"name: letters, digits, '_', '-' and '.' only, got {plan.name!r}")
    if not plan.seeds or len(set(plan.seeds)) != len(plan.seeds) or min(plan.seeds) < 0:
        raise ConfigError(f"seeds: give distinct non-negative integers, e.g. [0, 1, 2]; got {plan.seeds}")
    if plan.torch_threads < 0:
        raise ConfigError(f"torch_threads: must be >= 0 (0 = torch's default), got {plan.torch_threads}")
    if not plan.recipes:
        raise ConfigError("recipes: define at least one, e.g. [recipes.web] path = \"recipes/ablate/web.toml\"")
    for name, ref in plan.recipes.items():
        if not NAME.match(name):
            raise ConfigError(f"recipes.{name}: names may use letters, digits, '_', '-' and '.' only")
        if not ref.path:
            raise ConfigError(f"recipes.{name}.path: required: a phase-scheduler recipe TOML (see docs/mix.md)")
        if not os.path.isfile(ref.path):
            raise ConfigError(f"recipes.{name}.path: {ref.path!r} not found (paths are relative to the directory "
                              "you run `assay` from)")
    if not plan.sizes:
        raise ConfigError("sizes: define at least one [[sizes]] table with name, preset and tokens")
    seen: set[str] = set()
    for i, size in enumerate(plan.sizes):
        where = f"sizes[{i}]"
        if not NAME.match(size.name or ""):
            raise ConfigError(f"{where}.name: required (letters, digits, '_', '-', '.')")
        if size.name in seen:
            raise ConfigError(f"{where}.name: size {size.name!r} is defined twice")
        seen.add(size.name)
        if size.preset not in PRESETS:
            raise ConfigError(f"{where}.preset: unknown preset {size.preset!r}; presets: {', '.join(PRESETS)}")
        if size.tokens < 1:
            raise ConfigError(f"{where}.tokens: training tokens per cell, must be >= 1, got {size.tokens}")
        unknown = sorted(set(size.model) - {f.name for f in dataclasses.fields(PRESETS[size.preset])})
        if unknown:
            raise ConfigError(f"{where}.model: unknown model fields {unknown} (see trainer/config.py ModelConfig)")
        try:
            ModelConfig(**{**dataclasses.asdict(PRESETS[size.preset]), **size.model})
        except (TrainerConfigError, TypeError) as exc:
            raise ConfigError(f"{where}.model: {exc}") from None
        if "vocab_size" in size.model:
            raise ConfigError(f"{where}.model.vocab_size: set by the plan's mix.vocab_size so every recipe's "
                              "model has the same size; remove it")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in plan.train:
        if key in RESERVED_TRAIN:
            raise ConfigError(f"train.{key}: set by the ablation for each cell (sizes[].tokens decides the steps, "
                              "seeds the seed, output the folders); remove it")
        if key not in known:
            raise ConfigError(f"train.{key}: not a trainer [train] field; known: {sorted(known - set(RESERVED_TRAIN))}")
    try:
        TrainConfig(**{**train_defaults(), **plan.train})
    except Exception as exc:
        raise ConfigError(f"train: {exc}") from None
    m = plan.mix
    if m.seq_len < 2:
        raise ConfigError(f"mix.seq_len: must be >= 2, got {m.seq_len}")
    if not 0.0 < m.heldout_fraction < 0.5:
        raise ConfigError(f"mix.heldout_fraction: must be in (0, 0.5): the eval sets are the held-out documents; "
                          f"got {m.heldout_fraction}")
    if m.vocab_size <= 260:
        raise ConfigError(f"mix.vocab_size: must be > 260 (256 bytes + 4 special tokens), got {m.vocab_size}")
    e = plan.eval
    if not e.sets and not e.tasks:
        raise ConfigError("eval: give at least one eval set ([eval.sets.NAME] source = ...) or task")
    for name, s in e.sets.items():
        if not NAME.match(name):
            raise ConfigError(f"eval.sets.{name}: names may use letters, digits, '_', '-' and '.' only")
        if not s.source:
            raise ConfigError(f"eval.sets.{name}.source: required: a curation output or folder of Parquet shards")
    if e.points < 1 or e.max_docs < 1:
        raise ConfigError(f"eval.points and eval.max_docs: must be >= 1, got {e.points} and {e.max_docs}")
    if not e.primary and not e.sets:
        raise ConfigError("eval.primary: required when there are no eval sets, e.g. \"mytask.acc_norm\"")
    if e.primary and "." not in e.primary:
        raise ConfigError(f"eval.primary: SET.METRIC or TASK.METRIC (e.g. web.bits_per_byte), got {e.primary!r}")
