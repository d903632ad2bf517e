"""The cells of a plan (recipe x size x seed): each one's resolved recipe, model, steps, tokens and compute.

A recipe is resolved per size: the plan's mix settings are applied (same seq_len, held-out rule and
tokenizer size for every recipe) and the phase budgets are scaled, keeping their proportions, to exactly
the sequences the size trains on, so every size sees every phase of the schedule.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass

from pipelines.ablate.plan import Plan, SizeSpec, train_defaults
from pipelines.mix.recipe import Recipe, load_recipe, recipe_hash, validate


@dataclass
class Cell:
    recipe: str
    size: str
    seed: int
    resolved: Recipe  # the recipe as mixed for this size
    model: object  # trainer.config.ModelConfig
    steps: int
    tokens: int  # training tokens (steps x sequences per step x seq_len)
    params: int  # total parameters (tied weights once)
    flops: float  # 6 x params x tokens

    @property
    def key(self) -> str:
        return f"{self.recipe}/{self.size}/seed-{self.seed}"

    @property
    def recipe_hash(self) -> str:
        return recipe_hash(self.resolved)


def cell_dir(output: str, recipe: str, size: str, seed: int) -> str:
    return os.path.join(output, "cells", recipe, size, f"seed-{seed}")


def sequences_per_step(plan: Plan) -> int:
    t = {**train_defaults(), **plan.train}
    return int(t["micro_batch"]) * int(t["grad_accum"])


def resolve_recipe(base: Recipe, plan: Plan, size: SizeSpec) -> tuple[Recipe, int]:
    """(the recipe mixed for `size`, optimizer steps): phases scaled to the size's sequences."""
    recipe = copy.deepcopy(base)
    m = plan.mix
    recipe.seq_len = m.seq_len
    recipe.heldout_fraction = m.heldout_fraction
    if not recipe.tokenizer.path:
        recipe.tokenizer.vocab_size = m.vocab_size
    recipe.runner.workers, recipe.runner.mode = m.workers, m.mode
    per_step = sequences_per_step(plan)
    steps = max(1, size.tokens // (per_step * m.seq_len))
    needed = steps * per_step
    total = sum(p.tokens for p in base.phases)
    for phase in recipe.phases:
        phase.tokens = math.ceil(needed * phase.tokens / total) * (m.seq_len + 1)
    validate(recipe)
    return recipe, steps


def model_config(plan: Plan, size: SizeSpec, recipe: Recipe):
    """The size's preset with its overrides; vocabulary from the plan (or a fixed tokenizer file)."""
    from trainer.config import ModelConfig
    from trainer.presets import preset_config

    vocab = plan.mix.vocab_size
    if recipe.tokenizer.path:
        from trainer.tokenizer import load_tokenizer

        vocab = max(vocab, load_tokenizer(recipe.tokenizer.path).get_vocab_size(with_added_tokens=True))
    base = dataclasses.asdict(preset_config(size.preset))
    base.update(size.model)
    base["vocab_size"] = vocab
    base["max_seq_len"] = max(int(base["max_seq_len"]), plan.mix.seq_len)
    return ModelConfig(**base)


def plan_cells(plan: Plan) -> list[Cell]:
    """Every cell in run order: recipe by recipe, size by size, seed by seed."""
    from trainer.presets import parameter_count

    cells = []
    for name, ref in plan.recipes.items():
        base = load_recipe(ref.path)
        for size in plan.sizes:
            resolved, steps = resolve_recipe(base, plan, size)
            model = model_config(plan, size, resolved)
            params = parameter_count(model)["total"]
            tokens = steps * sequences_per_step(plan) * plan.mix.seq_len
            for seed in plan.seeds:
                cells.append(Cell(name, size.name, seed, resolved, model, steps, tokens, params,
                                  6.0 * params * tokens))
    return cells
