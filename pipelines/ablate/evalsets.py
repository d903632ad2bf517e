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
    """Write <output>/evalsets/heldout/<set>.parquet (id, text); return {set: {documents, sha256}}.
    A source without shards or a predicate DuckDB rejects is a ConfigError naming the field."""
    import duckdb
    import pyarrow as pa

    from curation.shards import write_table_atomic
    from groundwork.config import ConfigError
    from pipelines.mix.pools import PoolFiles, count_pool, is_heldout, pool_files, pool_query
    from pipelines.mix.recipe import PoolSpec
    from trainer.token_shards import file_sha256

    info = {}
    con = duckdb.connect()
    try:
        for name, spec in plan.eval.sets.items():
            pool = PoolFiles(name, PoolSpec(source=spec.source, predicate=spec.predicate), [])
            pool.files = pool_files(name, pool.spec)
            if not pool.files:
                raise ConfigError(f"eval.sets.{name}.source: no Parquet shards in {spec.source!r}; run "
                                  f"`assay run --output {spec.source}` first or fix the path")
            try:
                count_pool(con, pool)
            except ConfigError as exc:
                raise ConfigError(f"eval.sets.{name}: {str(exc).split(': ', 1)[-1]}") from None
            rows = con.execute(pool_query(pool) + " ORDER BY id").fetchall()
            kept = [(i, t) for i, t in rows if is_heldout(t, plan.mix.heldout_fraction)][: plan.eval.max_docs]
            if not kept:
                raise ConfigError(f"eval.sets.{name}: none of its {len(rows)} documents falls in the held-out "
                                  f"fraction {plan.mix.heldout_fraction}; raise mix.heldout_fraction or widen "
                                  f"eval.sets.{name}.predicate")
            path = os.path.join(output, EVAL_DIR, "heldout", f"{name}.parquet")
            table = pa.table({"id": [i for i, _ in kept], "text": [t for _, t in kept]})
            write_table_atomic(table, path)
            info[name] = {"documents": len(kept), "sha256": file_sha256(path), "source": spec.source,
                          "predicate": spec.predicate}
    finally:
        con.close()
    folder = os.path.join(output, EVAL_DIR, "heldout")
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.endswith(".parquet") and name[: -len(".parquet")] not in plan.eval.sets:
            os.remove(os.path.join(folder, name))  # a set the plan no longer has: never scored again
    return info


def load_tasks(plan: Plan) -> list:
    from trainer.eval_cloze import load_task

    return [load_task(spec, plan.eval.task_limit) for spec in plan.eval.tasks]


def evaluate_checkpoint_on_sets(path: str, data_dir: str, output: str, plan: Plan, tasks: list) -> dict[str, float]:
    """Flat {"<set>.loss", "<set>.bits_per_byte", "<task>.acc", "<task>.acc_norm"} of one checkpoint, with
    the tokenizer of the token shards it was trained on."""
    import torch

    from trainer.checkpoint import load_trained_model
    from trainer.eval_cloze import evaluate_cloze
    from trainer.eval_heldout import heldout_metrics
    from trainer.token_shards import TokenShardReader
    from trainer.tokenizer import eos_id, load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, run, _ = load_trained_model(path, device)
    reader = TokenShardReader(data_dir, verify=False)
    tok = load_tokenizer(reader.tokenizer_path)
    eos, seq_len = eos_id(tok), min(reader.seq_len, run.model.max_seq_len)
    flat: dict[str, float] = {}
    if plan.eval.sets:
        sets = heldout_metrics(model, tok, os.path.join(output, EVAL_DIR), seq_len, eos, device, plan.eval.max_docs)
        for name in plan.eval.sets:
            flat[f"{name}.loss"] = sets[name]["loss"]
            flat[f"{name}.bits_per_byte"] = sets[name]["bits_per_byte"]
    for task in tasks:
        scores = evaluate_cloze(model, tok, task, seq_len, device, prefix=[eos])
        flat[f"{task.name}.acc"] = scores["acc"]
        flat[f"{task.name}.acc_norm"] = scores["acc_norm"]
    return flat
