"""An ablation plan: which recipes to compare, at which proxy sizes and token budgets, with how many seeds,
and how to score them. Every default lives here; each table checks its own values (the sizes' models and
the [train] overrides as the trainer's own configs), `validate` the plan as a whole; errors name the field.

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

from assay.groundwork.config import ConfigError, FieldError, from_dict, load_config
from assay.pipelines.mix import MixRunnerConfig
from assay.trainer.config import ModelConfig, TrainConfig
from assay.trainer.config_file import model_config_from_dict
from assay.trainer.presets import PRESETS
from assay.trainer.tokenizer import VOCAB_FLOOR, VOCAB_FLOOR_REASON

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
NAME_RULE = "letters, digits, '_', '-' and '.' only"
#: TrainConfig fields the ablation sets per cell; a plan may not override them.
RESERVED_TRAIN = ("data", "out_dir", "seed", "max_steps", "stop_after", "checkpoint_every", "keep_checkpoints",
                  "eval_every")
#: the cloze metrics (assay/trainer/eval_cloze.py) where higher is better; every other metric is a loss
HIGHER_IS_BETTER = ("acc", "acc_norm", "prob_correct")


@dataclass
class RecipeRef:
    """A phase-scheduler recipe in the plan. `label` is shown next to the name (e.g. "stand-in: heuristic
    thresholds"); `needs` says what must exist for the recipe to run and how to produce it."""

    path: str = ""  # a phase-scheduler recipe TOML (docs/mix.md)
    label: str = ""  # shown next to the recipe's name in tables
    needs: str = ""  # what must exist for the recipe to run, and how to produce it

    def __post_init__(self) -> None:
        if not self.path:
            raise FieldError("path", "required: a phase-scheduler recipe TOML (see docs/mix.md)")


@dataclass
class SizeSpec:
    """A proxy size: a trainer preset plus field overrides, and the training tokens of each cell."""

    name: str = ""  # the size's name in tables and cell folders
    preset: str = "mini-1m"  # a trainer preset (assay/trainer/presets.py)
    tokens: int = 0  # training tokens of each cell of this size
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields that override the preset's

    def __post_init__(self) -> None:
        if not NAME.match(self.name or ""):
            raise FieldError("name", f"required ({NAME_RULE})")
        if self.preset not in PRESETS:
            raise FieldError("preset", f"unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        if self.tokens < 1:
            raise FieldError("tokens", f"training tokens per cell, must be >= 1, got {self.tokens}")
        if "vocab_size" in self.model:
            raise FieldError("model.vocab_size", "set by the plan's mix.vocab_size so every recipe's model has the "
                             "same size; remove it")
        unknown = sorted(set(self.model) - {f.name for f in dataclasses.fields(ModelConfig)})
        if unknown:
            raise FieldError("model", f"unknown model fields {unknown} (see assay/trainer/config.py ModelConfig)")
        try:
            self.model_config()
        except ConfigError as exc:
            raise FieldError("model", str(exc)) from None

    def model_config(self) -> ModelConfig:
        """The trainer's model config of this size: its preset with its overrides."""
        return model_config_from_dict({"preset": self.preset, **self.model}, where="")


@dataclass
class MixSettings:
    """Applied to every recipe so the cells are comparable: the same sequence length, the same held-out
    rule (the shared eval sets are exactly the documents every recipe holds out) and tokenizer size, and the
    Beam runner every mix is tokenized with."""

    seq_len: int = 64  # tokens per packed sequence of every recipe's mix (a short context for tiny proxies)
    #: of each pool, by content hash: the documents no recipe trains on, from which the eval sets come
    heldout_fraction: float = 0.05
    vocab_size: int = 1024  # every recipe's tokenizer size; small for tiny proxies (embedding = vocab x d_model)
    runner: MixRunnerConfig = field(default_factory=MixRunnerConfig)  # replaces every recipe's [runner]

    def __post_init__(self) -> None:
        if self.seq_len < 2:
            raise FieldError("seq_len", f"must be >= 2, got {self.seq_len}")
        if not 0.0 < self.heldout_fraction < 0.5:
            raise FieldError("heldout_fraction", "must be in (0, 0.5): the eval sets are the held-out documents; "
                             f"got {self.heldout_fraction}")
        if self.vocab_size <= VOCAB_FLOOR:
            raise FieldError("vocab_size", f"must be > {VOCAB_FLOOR} ({VOCAB_FLOOR_REASON}), got {self.vocab_size}")


@dataclass
class EvalSet:
    """Documents scored as loss and bits-per-byte, from one of two kinds of source:
    - `source` (+ `predicate`, DuckDB SQL): a curation output; its documents that the mix's held-out rule sets
      aside, so no recipe drawing from that source trains on them (the filters did judge that source);
    - `text`: reference text kept out of every recipe's pools (neutral: no filter ever judged it): a .txt/.md
      file (one document), a .jsonl file (one {"text": ...} per line) or a folder of those. Every document is
      scored (up to eval.max_docs), and the run refuses the plan if any recipe's pool holds one of them."""

    source: str = ""  # a curation output or a folder of Parquet shards; its held-out documents are scored
    predicate: str = "true"  # DuckDB SQL over `source`'s columns; "true" takes every held-out document
    text: str = ""  # reference text kept out of every pool: a .txt/.md/.jsonl file or a folder of those

    def __post_init__(self) -> None:
        if bool(self.source) == bool(self.text):
            raise FieldError("source", "give exactly one of `source` (a curation output or folder of Parquet "
                             "shards) or `text` (reference text kept out of every pool: .txt/.md/.jsonl file or "
                             "folder)")
        if self.text and self.predicate != "true":
            raise FieldError("predicate", "applies to `source` sets only; a `text` set is scored whole")

    @property
    def neutral(self) -> bool:
        return bool(self.text)


@dataclass
class EvalSettings:
    """How every cell is scored: eval sets (loss, bits-per-byte), cloze tasks, and at which checkpoints."""

    sets: dict[str, EvalSet] = field(default_factory=dict)  # name -> documents scored as loss and bits-per-byte
    tasks: list[str] = field(default_factory=list)  # cloze task files (trainer format) or "mmlu"
    task_limit: int = 200  # questions read per task (the first ones)
    max_docs: int = 64  # per eval set
    points: int = 4  # checkpoints evaluated per cell (for the eval-vs-tokens curves), the last included
    primary: str = ""  # metric that ranks recipes and feeds the scaling fit; default: first set's bits_per_byte

    def __post_init__(self) -> None:
        for name in self.sets:
            if not NAME.match(name):
                raise FieldError(f"sets.{name}", f"names may use {NAME_RULE}")
        for name in ("points", "max_docs"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.primary and "." not in self.primary:
            raise FieldError("primary", f"SET.METRIC or TASK.METRIC (e.g. web.bits_per_byte), got {self.primary!r}")


@dataclass
class Plan:
    """The whole ablation: recipes x sizes x seeds, the settings every cell shares, and where results go."""

    name: str = "ablation"  # the plan's name in its report
    output: str = "out/ablate"  # the folder of cells, mixes, eval sets and the report
    mix_cache: str = ""  # token-shard cache shared across plans; default <output>/mixes
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # training seeds (model initialisation)
    # torch CPU threads while the plan runs; 0 = torch's default. Tiny proxies on a busy 2-core machine run
    # many times faster on 1 thread (no spin-waiting between threads); results do not depend on it.
    torch_threads: int = 0
    # cells trained at once, each in its own process with torch_threads threads (mixes are built first, one at
    # a time); on a 2-core machine 2 x 1 thread keeps both cores busy with tiny proxies
    parallel_cells: int = 1
    recipes: dict[str, RecipeRef] = field(default_factory=dict)  # name -> the recipe compared
    sizes: list[SizeSpec] = field(default_factory=list)  # the proxy sizes, each trained on every recipe
    train: dict[str, Any] = field(default_factory=dict)  # trainer [train] overrides shared by every cell
    mix: MixSettings = field(default_factory=MixSettings)  # forced on every recipe so cells compare
    eval: EvalSettings = field(default_factory=EvalSettings)  # how every cell is scored

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise FieldError("name", f"{NAME_RULE}, got {self.name!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise FieldError("seeds", f"give distinct non-negative integers, e.g. [0, 1, 2]; got {self.seeds}")
        if self.parallel_cells < 1:
            raise FieldError("parallel_cells", f"cells trained at once, must be >= 1, got {self.parallel_cells}")
        if self.torch_threads < 0:
            raise FieldError("torch_threads", f"must be >= 0 (0 = torch's default), got {self.torch_threads}")
        for name in self.recipes:
            if not NAME.match(name):
                raise FieldError(f"recipes.{name}", f"names may use {NAME_RULE}")
        seen: set[str] = set()
        for i, size in enumerate(self.sizes):
            if size.name in seen:
                raise FieldError(f"sizes[{i}].name", f"size {size.name!r} is defined twice")
            seen.add(size.name)
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        for key in self.train:
            if key in RESERVED_TRAIN:
                raise FieldError(f"train.{key}", "set by the ablation for each cell (sizes[].tokens decides the "
                                 "steps, seeds the seed, output the folders); remove it")
            if key not in known:
                raise FieldError(f"train.{key}", f"not a trainer [train] field; known: "
                                 f"{sorted(known - set(RESERVED_TRAIN))}")
        try:
            self.train_config()
        except ConfigError as exc:
            raise FieldError("train", str(exc)) from None

    @property
    def primary_metric(self) -> str:
        return self.eval.primary or f"{next(iter(self.eval.sets))}.bits_per_byte"

    def train_config(self, **cell: Any) -> TrainConfig:
        """The trainer's [train] of a cell: the ablation's defaults, the plan's overrides, then `cell` (the
        fields the ablation sets per cell)."""
        return from_dict(TrainConfig, {**train_defaults(), **self.train, **cell})

    @property
    def sequences_per_step(self) -> int:
        train = self.train_config()
        return train.micro_batch * train.grad_accum


def higher_is_better(metric: str) -> bool:
    return metric.rsplit(".", 1)[-1] in HIGHER_IS_BETTER


def load_plan(path: str) -> Plan:
    """Parse and validate a plan TOML file; ConfigError messages start with the file and field."""
    return load_config(Plan, path, build=lambda data: validate(from_dict(Plan, data)))


def train_defaults() -> dict[str, Any]:
    """The ablation's [train] defaults (tiny proxies on CPU), before the plan's overrides."""
    return dict(micro_batch=8, grad_accum=1, lr=3e-3, warmup_steps=5, schedule="cosine", progress=False,
                log_every=1)


def validate(plan: Plan) -> Plan:
    """The plan as a whole (each table checked its own fields): something to compare, sizes to compare it at,
    recipe files that exist, and something to score. Returns the plan."""
    if not plan.recipes:
        raise ConfigError("recipes: define at least one, e.g. [recipes.web] path = \"recipes/ablate/web.toml\"")
    for name, ref in plan.recipes.items():
        if not os.path.isfile(ref.path):
            raise ConfigError(f"recipes.{name}.path: {ref.path!r} not found (paths are relative to the directory "
                              "you run `assay` from)")
    if not plan.sizes:
        raise ConfigError("sizes: define at least one [[sizes]] table with name, preset and tokens")
    e = plan.eval
    if not e.sets and not e.tasks:
        raise ConfigError("eval: give at least one eval set ([eval.sets.NAME] source = ...) or task")
    if not e.primary and not e.sets:
        raise ConfigError("eval.primary: required when there are no eval sets, e.g. \"mytask.acc_norm\"")
    return plan
