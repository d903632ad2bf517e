"""Evaluation of a model or a checkpoint: held-out loss / bits-per-byte per pool, and cloze tasks.

The tokenizer is the one stored with the token shards (`<data>/tokenizer.json`), so scores use the ids
the model was trained on. `assay eval CHECKPOINT` calls `evaluate_checkpoint`.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any

import torch

from trainer.config import RunConfig


def _tokenizer_and_eos(data_dir: str):
    from trainer.token_shards import MANIFEST_FILE
    from trainer.tokenizer import eos_id, load_tokenizer

    with open(os.path.join(data_dir, MANIFEST_FILE), encoding="utf-8") as fh:
        manifest = json.load(fh)
    tok = load_tokenizer(os.path.join(data_dir, manifest["tokenizer"]))
    return tok, eos_id(tok), int(manifest["seq_len"])


def evaluate_model(model, run: RunConfig, device, data_dir: str | None = None,
                   tasks: list[str] | None = None) -> dict[str, Any]:
    """{"heldout": {pool: ...}, "tasks": {name: ...}} or {"note": why nothing could be scored}."""
    from trainer.eval_cloze import evaluate_cloze, load_task
    from trainer.eval_heldout import heldout_metrics

    data_dir = data_dir if data_dir is not None else run.train.data
    tasks = run.eval.tasks if tasks is None else tasks
    if not data_dir or data_dir == "synthetic" or not os.path.isdir(data_dir):
        return {"note": "no tokenizer: evaluation needs a token-shard folder (train.data or --data)"}
    tok, eos, seq_len = _tokenizer_and_eos(data_dir)
    if tok.get_vocab_size() > run.model.vocab_size:
        raise ValueError(f"the tokenizer of {data_dir} has {tok.get_vocab_size()} ids but the model only "
                         f"{run.model.vocab_size}; evaluate with the token shards the model was trained on")
    seq_len = min(seq_len, run.model.max_seq_len)
    out: dict[str, Any] = {}
    if run.eval.heldout:
        out["heldout"] = heldout_metrics(model, tok, data_dir, seq_len, eos, device, run.eval.heldout_max_docs,
                                         run.eval.batch_size)
    if tasks:
        out["tasks"] = {}
        for spec in tasks:
            task = load_task(spec, run.eval.task_limit)
            out["tasks"][task.name] = evaluate_cloze(model, tok, task, seq_len, device, prefix=[eos],
                                                      batch_size=run.eval.batch_size)
    return out


def evaluate_checkpoint(path: str, data_dir: str | None = None, tasks: list[str] | None = None,
                        output: str | None = None, task_limit: int | None = None) -> dict[str, Any]:
    """Load a checkpoint (file or run folder), evaluate, optionally write the result JSON atomically."""
    from trainer.checkpoint import load_trained_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, run, ckpt = load_trained_model(path, device)
    if task_limit is not None:
        run.eval.task_limit = task_limit
    result = {"checkpoint_step": ckpt["step"], **evaluate_model(model, run, device, data_dir, tasks)}
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        tmp = f"{output}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, sort_keys=True)
        os.replace(tmp, output)
    return result
