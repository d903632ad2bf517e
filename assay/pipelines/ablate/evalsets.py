"""Evaluation shared by every recipe: the same held-out documents and cloze tasks for every cell.

An eval set of a `source` is the documents of a curation output (matching a predicate) that the held-out rule
of `assay mix` sets aside. The plan forces the same `heldout_fraction` on every recipe, so a document of such a
set is held out of every mix drawn from that source: no recipe trains on it (but the filters judged it).
A `text` set is reference text kept out of every recipe's pools, so no filter ever judged it (neutral); the run
refuses the plan when a pool's source holds one of its documents (same normalised content hash).
Scores are loss and bits-per-byte (comparable across the recipes' different tokenizers) and cloze accuracy and
correct-answer probability.
"""
from __future__ import annotations

import os
from typing import Any

from assay.pipelines.ablate.plan import Plan

EVAL_DIR = "evalsets"


def build_eval_sets(plan: Plan, output: str) -> dict[str, dict[str, Any]]:
    """Write the eval sets as the held-out files of <output>/evalsets (assay.trainer.token_shards' layout, so the
    trainer's held-out evaluation reads them); return {set: {documents, sha256, source, predicate}}.
    A source without shards or a predicate refused (assay/pipelines/mix/predicate.py) or that DuckDB cannot run is a
    ConfigError naming the field."""
    from assay.groundwork.config import ConfigError
    from assay.pipelines.mix import (
        PoolFiles,
        PoolSpec,
        count_pool,
        is_heldout,
        pool_files,
        pool_query,
        pools_connection,
    )
    from assay.trainer.token_shards import file_sha256, heldout_pools, write_heldout

    folder = os.path.join(output, EVAL_DIR)
    info = {}
    for name, spec in plan.eval.sets.items():
        if spec.neutral:
            docs = read_text_documents(spec.text, f"eval.sets.{name}.text")[: plan.eval.max_docs]
            refuse_contaminated(plan, name, docs)
            path = write_heldout(folder, name, docs)
            info[name] = {"documents": len(docs), "sha256": file_sha256(path), "text": spec.text, "neutral": True}
            continue
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


TEXT_SUFFIXES = (".txt", ".md", ".jsonl")
#: the same normalisation on both sides of the contamination check: case and runs of whitespace ignored
NORMALISED_HASH = "md5(lower(regexp_replace(trim(text), '\\s+', ' ', 'g')))"


def read_text_documents(path: str, where: str) -> list[tuple[str, str]]:
    """(id, text) documents of a reference-text eval set, sorted by id: a .txt/.md file is one document, each
    line of a .jsonl file with a non-empty "text" one document (id: file:line), a folder every such file under
    it. Nothing readable is a ConfigError naming the field; a bad JSONL line is an error naming the line."""
    import json

    from assay.groundwork.config import ConfigError

    if os.path.isdir(path):
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names
                       if f.endswith(TEXT_SUFFIXES) and not f.startswith("."))
        base = path
    elif os.path.isfile(path):
        files, base = [path], os.path.dirname(path)
    else:
        raise ConfigError(f"{where}: {path!r} not found: give a .txt/.md/.jsonl file or a folder of them "
                          "(paths are relative to the directory you run `assay` from)")
    docs = []
    for file in files:
        rel = os.path.relpath(file, base)
        with open(file, encoding="utf-8", errors="replace") as fh:
            if not file.endswith(".jsonl"):
                text = fh.read().strip()
                if text:
                    docs.append((rel, text))
                continue
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line)["text"]
                    if not isinstance(text, str):
                        raise TypeError("not a string")
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(f"{where}: {rel} line {n}: needs a JSON object with a \"text\" string "
                                      f"({exc})") from None
                if text.strip():
                    docs.append((f"{rel}:{n}", text.strip()))
    if not docs:
        raise ConfigError(f"{where}: no non-empty documents in {path!r} (read: {', '.join(TEXT_SUFFIXES)} files)")
    return sorted(docs)


def refuse_contaminated(plan: Plan, name: str, docs: list[tuple[str, str]]) -> None:
    """ConfigError when any recipe's pool source holds a document of the neutral eval set `name` (same content
    after lowering case and collapsing whitespace; the whole source is checked, whatever the pool's predicate,
    since its filters judged all of it). A source without shards has nothing to check (the mix reports it)."""
    import pyarrow as pa

    from assay.groundwork.config import ConfigError
    from assay.pipelines.mix import PoolFiles, PoolSpec, load_recipe, pool_files, pool_query, pools_connection

    sources: dict[str, list[str]] = {}  # source -> the recipes reading it
    for recipe, ref in plan.recipes.items():
        for spec in load_recipe(ref.path).pools.values():
            sources.setdefault(spec.source, []).append(recipe)
    table = pa.table({"id": [d[0] for d in docs], "text": [d[1] for d in docs]})
    for source, recipes in sources.items():
        pool = PoolFiles(source, PoolSpec(source=source), [])
        pool.files = pool_files(source, pool.spec)
        if not pool.files:
            continue
        with pools_connection([pool]) as con:
            con.register("evaldocs", table)
            hits = con.execute(
                f"SELECT e.id, p.id FROM (SELECT id, {NORMALISED_HASH} AS h FROM evaldocs) e JOIN "
                f"({pool_query(pool, columns=f'id, {NORMALISED_HASH} AS h')}) p "
                "USING (h) ORDER BY e.id LIMIT 5").fetchall()
        if hits:
            shown = ", ".join(f"{e} = {p}" for e, p in hits)
            raise ConfigError(
                f"eval.sets.{name}.text: not neutral: the pool source {source!r} of recipe(s) "
                f"{', '.join(sorted(set(recipes)))} holds its documents ({shown}{', ...' if len(hits) == 5 else ''}); "
                "keep the reference text out of every recipe's sources (or score it as a `source` set)")


def load_tasks(plan: Plan) -> list:
    from assay.trainer.eval_cloze import load_task

    return [load_task(spec, plan.eval.task_limit) for spec in plan.eval.tasks]


def checkpoint_scores(path: str, data_dir: str, output: str, plan: Plan, tasks: list) -> dict[str, float]:
    """Flat {"<set>.loss", "<set>.bits_per_byte", "<task>.acc", "<task>.acc_norm", "<task>.prob_correct"} of one
    checkpoint: the
    trainer's evaluation, with the tokenizer of the token shards it was trained on, on the plan's eval sets."""
    from assay.trainer.config import EvalConfig
    from assay.trainer.evaluate import evaluate_checkpoint

    settings = EvalConfig(heldout=bool(plan.eval.sets), heldout_max_docs=plan.eval.max_docs)
    result = evaluate_checkpoint(path, data_dir, tasks, settings=settings, heldout_dir=os.path.join(output, EVAL_DIR))
    flat: dict[str, float] = {}
    for name in plan.eval.sets:
        for metric in ("loss", "bits_per_byte"):
            flat[f"{name}.{metric}"] = result["heldout"][name][metric]
    for task in tasks:
        for metric in ("acc", "acc_norm", "prob_correct"):
            flat[f"{task.name}.{metric}"] = result["tasks"][task.name][metric]
    return flat
