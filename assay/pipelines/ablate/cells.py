"""The cells of a plan (recipe x size x seed): each one's resolved recipe, model, steps, tokens and compute.

A recipe is resolved per size: the plan's mix settings are applied (same seq_len, held-out rule and
tokenizer size for every recipe) and the phase budgets are scaled, keeping their proportions, to exactly
the sequences the size trains on, so every size sees every phase of the schedule.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from assay.pipelines.ablate.plan import Plan, SizeSpec
from assay.pipelines.mix import Recipe, load_recipe, recipe_hash
from assay.trainer.config import ModelConfig
from assay.trainer.token_shards import row_length


@dataclass
class Cell:
    recipe: str
    size: str
    seed: int
    resolved: Recipe  # the recipe as mixed for this size
    model: ModelConfig
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


def resolve_recipe(base: Recipe, plan: Plan, size: SizeSpec) -> tuple[Recipe, int]:
    """(the recipe mixed for `size`, optimizer steps): the plan's mix settings, phases scaled to the size's
    sequences (each table checks the values it is given)."""
    m = plan.mix
    per_step = plan.sequences_per_step
    steps = max(1, size.tokens // (per_step * m.seq_len))
    needed = steps * per_step
    total = sum(p.tokens for p in base.phases)
    phases = [dataclasses.replace(p, tokens=math.ceil(needed * p.tokens / total) * row_length(m.seq_len))
              for p in base.phases]
    tokenizer = base.tokenizer if base.tokenizer.path else dataclasses.replace(base.tokenizer,
                                                                               vocab_size=m.vocab_size)
    recipe = dataclasses.replace(base, seq_len=m.seq_len, heldout_fraction=m.heldout_fraction, tokenizer=tokenizer,
                                 runner=dataclasses.replace(m.runner), phases=phases)
    return recipe, steps


def model_config(plan: Plan, size: SizeSpec, recipe: Recipe) -> ModelConfig:
    """The size's preset with its overrides; vocabulary from the plan (or a fixed tokenizer file)."""
    vocab = plan.mix.vocab_size
    if recipe.tokenizer.path:
        from assay.trainer.tokenizer import load_tokenizer

        vocab = max(vocab, load_tokenizer(recipe.tokenizer.path).get_vocab_size(with_added_tokens=True))
    cfg = size.model_config()
    return dataclasses.replace(cfg, vocab_size=vocab, max_seq_len=max(cfg.max_seq_len, plan.mix.seq_len))


def plan_cells(plan: Plan) -> list[Cell]:
    """Every cell in run order: recipe by recipe, size by size, seed by seed."""
    from assay.trainer.sizing import parameter_count

    cells = []
    for name, ref in plan.recipes.items():
        base = load_recipe(ref.path)
        for size in plan.sizes:
            resolved, steps = resolve_recipe(base, plan, size)
            model = model_config(plan, size, resolved)
            params = parameter_count(model)["total"]
            tokens = steps * plan.sequences_per_step * plan.mix.seq_len
            for seed in plan.seeds:
                cells.append(Cell(name, size.name, seed, resolved, model, steps, tokens, params,
                                  6.0 * params * tokens))
    return cells
