"""Evaluation of a model or a checkpoint: held-out loss / bits-per-byte per pool, and cloze tasks.

The tokenizer is the one stored with the token shards (`<data>/tokenizer.json`), so scores use the ids
the model was trained on. `assay eval CHECKPOINT` calls `evaluate_checkpoint`; so does the ablation, with its
own [eval] settings, tasks and folder of shared eval sets.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from assay.groundwork.atomic import write_json_atomic
from assay.trainer.config import EvalConfig, RunConfig
from assay.trainer.eval_cloze import ClozeTask


def shard_tokenizer(data_dir: str, run: RunConfig):
    """(tokenizer, end-of-text id, sequence length to score at) of the token shards in `data_dir`: the shards'
    seq_len, at most the model's."""
    from assay.trainer.token_shards import ShardFolder
    from assay.trainer.tokenizer import eos_id, load_tokenizer

    folder = ShardFolder(data_dir)
    tok = load_tokenizer(folder.tokenizer_path)
    if tok.get_vocab_size() > run.model.vocab_size:
        raise ValueError(f"the tokenizer of {data_dir} has {tok.get_vocab_size()} ids but the model only "
                         f"{run.model.vocab_size}; evaluate with the token shards the model was trained on")
    return tok, eos_id(tok), min(folder.seq_len, run.model.max_seq_len)


def evaluate_model(model, run: RunConfig, device, data_dir: str | None = None,
                   tasks: list[str | ClozeTask] | None = None, heldout_dir: str | None = None) -> dict[str, Any]:
    """{"heldout": {pool: ...}, "tasks": {name: ...}} or {"note": why nothing could be scored}, with the
    settings of run.eval. `tasks` (default run.eval.tasks) are task specs or loaded tasks; the held-out pools
    scored are those of `heldout_dir` (default: the token shards' own)."""
    from assay.trainer.eval_cloze import evaluate_cloze, load_task
    from assay.trainer.eval_heldout import heldout_metrics

    data_dir = data_dir if data_dir is not None else run.train.data
    tasks = run.eval.tasks if tasks is None else tasks
    if not data_dir or data_dir == "synthetic" or not os.path.isdir(data_dir):
        return {"note": "no tokenizer: evaluation needs a token-shard folder (train.data or --data)"}
    tok, eos, seq_len = shard_tokenizer(data_dir, run)
    settings = run.eval
    out: dict[str, Any] = {}
    if settings.heldout:
        out["heldout"] = heldout_metrics(model, tok, heldout_dir or data_dir, seq_len, eos, device,
                                         settings.heldout_max_docs, settings.batch_size)
    if tasks:
        out["tasks"] = {}
        for spec in tasks:
            task = spec if isinstance(spec, ClozeTask) else load_task(spec, settings.task_limit)
            out["tasks"][task.name] = evaluate_cloze(model, tok, task, seq_len, device, prefix=[eos],
                                                      batch_size=settings.batch_size)
    return out


def evaluate_checkpoint(path: str, data_dir: str | None = None, tasks: list[str | ClozeTask] | None = None,
                        output: str | None = None, task_limit: int | None = None,
                        settings: EvalConfig | None = None, heldout_dir: str | None = None) -> dict[str, Any]:
    """Load a checkpoint (file or run folder) and evaluate it (evaluate_model), with `settings` in place of its
    run's [eval] when given; optionally write the result JSON atomically to `output`."""
    from assay.trainer.checkpoint import load_trained_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, run, ckpt = load_trained_model(path, device)
    if settings is not None:
        run.eval = settings
    if task_limit is not None:
        run.eval.task_limit = task_limit
    result = {"checkpoint_step": ckpt["step"], **evaluate_model(model, run, device, data_dir, tasks, heldout_dir)}
    if output:
        write_json_atomic(result, output)
    return result
