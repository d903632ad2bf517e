"""Evaluation shared by every recipe: the same held-out documents and cloze tasks for every cell.

An eval set is the documents of a source (matching a predicate) that the held-out rule of
`assay mix` sets aside. The plan forces the same `heldout_fraction` on every recipe, so a document of an
eval set is held out of every mix drawn from that source: no recipe trains on it. Scores are loss and
bits-per-byte (comparable across the recipes' different tokenizers) and cloze accuracy.
"""
from __future__ import annotations

import os
from typing import Any

from pipelines.ablate.plan import Plan

EVAL_DIR = "evalsets"


def build_eval_sets(plan: Plan, output: str) -> dict[str, dict[str, Any]]:
    """Write the eval sets as the held-out files of <output>/evalsets (trainer.token_shards' layout, so the
    trainer's held-out evaluation reads them); return {set: {documents, sha256, source, predicate}}.
    A source without shards or a predicate refused (pipelines/mix/predicate.py) or that DuckDB cannot run is a
    ConfigError naming the field."""
    from groundwork.config import ConfigError
    from pipelines.mix import PoolFiles, PoolSpec, count_pool, is_heldout, pool_files, pool_query, pools_connection
    from trainer.token_shards import file_sha256, heldout_pools, write_heldout

    folder = os.path.join(output, EVAL_DIR)
    info = {}
    for name, spec in plan.eval.sets.items():
        pool = PoolFiles(name, PoolSpec(source=spec.source, predicate=spec.predicate), [], prefix=f"eval.sets.{name}")
        pool.files = pool_files(name, pool.spec)
        if not pool.files:
            raise ConfigError(f"eval.sets.{name}.source: no Parquet shards in {spec.source!r}; run "
                              f"`assay run --output {spec.source}` first or fix the path")
        with pools_connection([pool]) as con:  # the predicate is checked (count_pool) before anything runs
            count_pool(con, pool)
            rows = con.execute(pool_query(pool) + " ORDER BY id").fetchall()
        kept = [(i, t) for i, t in rows if is_heldout(t, plan.mix.heldout_fraction)][: plan.eval.max_docs]
        if not kept:
            raise ConfigError(f"eval.sets.{name}: none of its {len(rows)} documents falls in the held-out "
                              f"fraction {plan.mix.heldout_fraction}; raise mix.heldout_fraction or widen "
                              f"eval.sets.{name}.predicate")
        path = write_heldout(folder, name, kept)
        info[name] = {"documents": len(kept), "sha256": file_sha256(path), "source": spec.source,
                      "predicate": spec.predicate}
    for name, path in heldout_pools(folder).items():
        if name not in plan.eval.sets:
            os.remove(path)  # a set the plan no longer has: never scored again
    return info


def load_tasks(plan: Plan) -> list:
    from trainer.eval_cloze import load_task

    return [load_task(spec, plan.eval.task_limit) for spec in plan.eval.tasks]


def checkpoint_scores(path: str, data_dir: str, output: str, plan: Plan, tasks: list) -> dict[str, float]:
    """Flat {"<set>.loss", "<set>.bits_per_byte", "<task>.acc", "<task>.acc_norm"} of one checkpoint: the
    trainer's evaluation, with the tokenizer of the token shards it was trained on, on the plan's eval sets."""
    from trainer.config import EvalConfig
    from trainer.evaluate import evaluate_checkpoint

    settings = EvalConfig(heldout=bool(plan.eval.sets), heldout_max_docs=plan.eval.max_docs)
    result = evaluate_checkpoint(path, data_dir, tasks, settings=settings, heldout_dir=os.path.join(output, EVAL_DIR))
    flat: dict[str, float] = {}
    for name in plan.eval.sets:
        for metric in ("loss", "bits_per_byte"):
            flat[f"{name}.{metric}"] = result["heldout"][name][metric]
    for task in tasks:
        for metric in ("acc", "acc_norm"):
            flat[f"{task.name}.{metric}"] = result["tasks"][task.name][metric]
    return flat
