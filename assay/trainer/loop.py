"""The training loop: data -> model -> AdamW with warmup+cosine/WSD, accumulation, clipping, checkpoints.

Resuming is automatic: if the output folder holds a checkpoint, the run continues from it with the same
model, optimizer, scheduler, RNG and data position, so on CPU the losses equal an uninterrupted run's.
Under torchrun each rank reads its own slice of the token shards and gradients are averaged by DDP
(or the parameters are sharded with FSDP2: NCCL on GPUs, gloo on CPUs).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from assay.groundwork.atomic import write_json_atomic
from assay.groundwork.config import ConfigError, to_dict
from assay.trainer.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from assay.trainer.compile_policy import should_compile
from assay.trainer.config import RunConfig
from assay.trainer.distributed import (
    DistInfo,
    gather_objects,
    gradient_sync,
    init_distributed,
    is_sharded,
    mean_across,
    min_across,
    wrap_model,
)
from assay.trainer.metrics import MetricsLog, ProgressBar
from assay.trainer.model import Decoder
from assay.trainer.schedule import make_scheduler


@dataclass
class TrainResult:
    """What a `train` call did."""

    out_dir: str  # where checkpoints and metrics went
    step: int  # optimizer steps completed (in total, across resumes)
    total_steps: int  # the run's max_steps
    losses: dict[int, float] = field(default_factory=dict)  # this invocation's steps
    checkpoint: str | None = None  # the last checkpoint written, if any
    evaluation: dict[str, Any] | None = None  # the end-of-training evaluation, if it ran


def open_data(run: RunConfig, info: DistInfo):
    """The token-shard reader of this rank, or the synthetic stream for data = "synthetic"."""
    t = run.train
    if t.data == "synthetic":
        from assay.trainer.synthetic_tokens import SyntheticTokenStream

        return SyntheticTokenStream(run.model.vocab_size, t.synthetic_seq_len, t.synthetic_sequences, t.seed,
                                    info.rank, info.world_size)
    if not t.data:
        raise ValueError("[train] data is empty: set it to a token-shard folder (`assay mix` output) or 'synthetic'")
    from assay.trainer.token_shards import TokenShardReader

    reader = TokenShardReader(t.data, rank=info.rank, world_size=info.world_size)
    vocab, seq_len = reader.vocab_size, reader.seq_len
    if vocab > run.model.vocab_size:
        raise ValueError(f"the shards' vocabulary ({vocab}) is larger than [model] vocab_size "
                         f"({run.model.vocab_size}); set vocab_size = {vocab}")
    if seq_len > run.model.max_seq_len:
        raise ValueError(f"the shards' seq_len ({seq_len}) exceeds [model] max_seq_len ({run.model.max_seq_len})")
    return reader


def make_optimizer(model: torch.nn.Module, run: RunConfig, device: str) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not norms, biases); torch's fused kernel (CPU and GPU)."""
    t = run.train
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, fused=True)


def autocast_context(run: RunConfig, device: str):
    """bf16 autocast on GPU (precision auto/bf16), bf16 on CPU only when asked, else fp32."""
    p = run.train.precision
    if p == "bf16" or (p == "auto" and device.startswith("cuda")):
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate_gradients(model, raw_model: Decoder, micro_batches: list[torch.Tensor], run: RunConfig,
                         info: DistInfo) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Forward/backward over the micro-batches, gradients scaled to the mean over them (DDP averages across
    ranks on the last one). Returns (this rank's mean loss, MoE max-load per micro-batch)."""
    cfg = run.model
    n = len(micro_batches)
    total = torch.zeros((), device=info.device)
    loads = []
    for i, batch in enumerate(micro_batches):
        with gradient_sync(model, i == n - 1), autocast_context(run, info.device):
            loss = model(batch[:, :-1], batch[:, 1:])
            objective = loss
            stats = raw_model.moe_stats()
            if stats:
                if cfg.aux_loss_coef > 0:
                    objective = loss + cfg.aux_loss_coef * torch.stack([s["aux"] for s in stats]).mean()
                loads.append(torch.stack([s["load"] for s in stats]).max() * cfg.n_experts)
        (objective / n).backward()
        total += loss.detach() / n
    return total, loads


def train_step(model, raw_model: Decoder, optimizer, scheduler, micro_batches: list[torch.Tensor], run: RunConfig,
               info: DistInfo) -> dict[str, Any]:
    """One optimizer step: accumulate, clip, AdamW, schedule. Returns loss (mean over ranks), lr, grad norm."""
    total, loads = accumulate_gradients(model, raw_model, micro_batches, run, info)
    clip = run.train.grad_clip if run.train.grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if hasattr(grad_norm, "full_tensor"):  # FSDP2: a DTensor norm over the shards
        grad_norm = grad_norm.full_tensor()
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    out = {"loss": mean_across(total, info).item(), "lr": lr, "grad_norm": float(grad_norm)}
    if loads:
        out["moe_load_max"] = mean_across(torch.stack(loads).max().float(), info).item()
    return out


def _state_dicts(model, raw_model, optimizer, run: RunConfig):
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return raw_model.state_dict(), optimizer.state_dict()


def _load_state_dicts(model, raw_model, optimizer, ckpt, run: RunConfig) -> None:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=ckpt["model"], optim_state_dict=ckpt["optimizer"],
                       options=StateDictOptions(full_state_dict=True))
        return
    raw_model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])


def _restore(ckpt_path: str, model, raw_model, optimizer, scheduler, reader, run: RunConfig, info: DistInfo) -> int:
    """Load a checkpoint into the run after checking it belongs to it; returns its step."""
    ckpt = load_checkpoint(ckpt_path)
    if ckpt["config"]["model"] != to_dict(run)["model"]:
        raise CheckpointError(f"{ckpt_path} was trained with a different [model] config; use a new out_dir "
                              "or restore the config (see config in the checkpoint)")
    if ckpt["fingerprint"] != reader.fingerprint:
        raise CheckpointError(f"{ckpt_path} was trained on data with fingerprint {ckpt['fingerprint'][:12]}, "
                              f"but {run.train.data} has {reader.fingerprint[:12]}; resume with the original token "
                              "shards or start a new out_dir")
    if ckpt["world_size"] != info.world_size:
        raise CheckpointError(f"{ckpt_path} was written by {ckpt['world_size']} processes, this run has "
                              f"{info.world_size}; resume with the same torchrun --nproc-per-node")
    _load_state_dicts(model, raw_model, optimizer, ckpt, run)
    scheduler.load_state_dict(ckpt["scheduler"])
    rank_state = ckpt["ranks"][info.rank]
    reader.load_state_dict(rank_state["data"])
    set_rng_state(rank_state["rng"])
    return int(ckpt["step"])


#: the [model] fields that decide the weights' shapes and meaning: a transformers folder must match them
ARCHITECTURE_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "norm", "mlp", "bias",
                       "lm_head_bias", "tie_embeddings", "n_experts", "top_k", "router", "rope_theta",
                       "rope_short_factor", "rope_long_factor", "rope_original_max_seq_len", "rope_attention_factor",
                       "rope_short_mscale", "rope_long_mscale",
                       "sliding_window", "dense_every")


@torch.no_grad()
def _init_from_hf(model: Decoder, folder: str) -> None:
    """Load a transformers checkpoint folder's weights into `model` (its architecture must equal the config)."""
    from transformers import AutoModelForCausalLM

    from assay.trainer.convert import from_hf

    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise ConfigError(f"[train] init_from = {folder!r} is not a transformers folder (no config.json); "
                          "write one with `assay export`")
    from assay.trainer.convert_phi3_small import is_phi3_small_folder, load_phi3_small_folder

    if is_phi3_small_folder(folder):  # no transformers class: read its reference layout directly
        source = load_phi3_small_folder(folder)
    else:
        source = from_hf(AutoModelForCausalLM.from_pretrained(folder).float())
    differ = [f"{name}: {getattr(source.cfg, name)!r} there, {getattr(model.cfg, name)!r} in [model]"
              for name in ARCHITECTURE_FIELDS if getattr(source.cfg, name) != getattr(model.cfg, name)]
    if differ:
        raise ConfigError(f"[train] init_from = {folder!r} does not match [model]: " + "; ".join(differ))
    model.load_state_dict(source.state_dict())


def _measured_peak(run: RunConfig, device: str) -> float:
    from assay.trainer.peak import measure_matmul_peak

    p = run.train.precision
    bf16 = p == "bf16" or (p == "auto" and device.startswith("cuda"))
    return measure_matmul_peak(device, torch.bfloat16 if bf16 else torch.float32)


def train(run: RunConfig, resume: bool = True) -> TrainResult:
    """Train (or continue) the run described by `run`; returns what happened in this invocation."""
    from assay.trainer.sizing import describe, flops_per_token

    t = run.train
    info = init_distributed()
    torch.manual_seed(t.seed + info.rank)
    np.random.seed(t.seed + info.rank)
    reader = open_data(run, info)
    seq_len = reader.seq_len
    per_step = t.micro_batch * t.grad_accum
    available = min_across(len(reader) // per_step, info)
    if available < 1:
        raise ValueError(f"the data has {len(reader)} sequences per rank, fewer than one step needs "
                         f"(micro_batch x grad_accum = {per_step}); lower them or add data")
    total_steps = min(t.max_steps, available)

    torch.manual_seed(t.seed)  # identical initial weights on every rank
    raw_model = Decoder(run.model)
    ckpt_path = latest_checkpoint(t.out_dir) if resume else None
    if t.init_from and not ckpt_path:
        _init_from_hf(raw_model, t.init_from)
    raw_model = raw_model.to(info.device)
    torch.manual_seed(t.seed + info.rank)
    model = wrap_model(raw_model, info, t.parallel)
    optimizer = make_optimizer(model, run, info.device)
    scheduler = make_scheduler(optimizer, t, total_steps)
    step = _restore(ckpt_path, model, raw_model, optimizer, scheduler, reader, run, info) if ckpt_path else 0
    compiled = should_compile(t.compile, info.device, total_steps)
    forward = torch.compile(model) if compiled else model
    model.train()

    tokens_per_step = per_step * seq_len * info.world_size
    flops_token = flops_per_token(run.model, seq_len)
    peak_flops = t.peak_flops or _measured_peak(run, info.device)
    log = MetricsLog(os.path.join(t.out_dir, "metrics.jsonl"), enabled=info.is_main)
    if info.is_main:
        os.makedirs(t.out_dir, exist_ok=True)
        write_json_atomic(to_dict(run), os.path.join(t.out_dir, "config.json"))
        log.write({"kind": "start", "step": step, "model": describe(run.model, seq_len), "world_size": info.world_size,
                   "peak_flops": peak_flops, "total_steps": total_steps, "resumed_from": ckpt_path,
                   "compiled": compiled})
    bar = ProgressBar(total_steps, step, enabled=t.progress and info.is_main)
    result = TrainResult(out_dir=t.out_dir, step=step, total_steps=total_steps)
    ran = 0
    try:
        while step < total_steps and not (t.stop_after and ran >= t.stop_after):
            t0 = time.perf_counter()
            batch = torch.from_numpy(np.asarray(reader.next_batch(per_step), dtype=np.int64)).to(info.device)
            metrics = train_step(forward, raw_model, optimizer, scheduler, list(batch.split(t.micro_batch)), run, info)
            if info.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            step += 1
            ran += 1
            tok_s = tokens_per_step / seconds
            record = {"kind": "train", "step": step, **metrics, "tokens": step * tokens_per_step,
                      "tok_s": tok_s, "mfu": tok_s * flops_token / (peak_flops * info.world_size)}
            if hasattr(reader, "phase_of"):
                record["phase"] = reader.phase_of(reader.position - 1)  # the data phase this step ended in
            result.losses[step] = metrics["loss"]
            if step % t.log_every == 0 or step == total_steps:
                log.write(record)
            bar.update(step, record)
            if step % t.checkpoint_every == 0 or step == total_steps:
                result.checkpoint = _save(t.out_dir, step, model, raw_model, optimizer, scheduler, reader, run, info)
            if (t.eval_every and step % t.eval_every == 0) or step == total_steps:
                result.evaluation = _evaluate(raw_model, run, info, step, log)
    finally:
        bar.close()
        log.close()
    result.step = step
    return result


def _evaluate(raw_model, run: RunConfig, info: DistInfo, step: int, log: MetricsLog) -> dict[str, Any] | None:
    """Held-out and task metrics on the main rank; with FSDP2 every rank runs the forwards (the parameters are
    sharded) and only the main rank keeps and logs the result."""
    from assay.trainer.evaluate import evaluate_model

    if not (info.is_main or is_sharded(raw_model)):
        return None
    evaluation = evaluate_model(raw_model, run, info.device)
    if not info.is_main:
        return None
    log.write({"kind": "eval", "step": step, **evaluation})
    return evaluation


def _save(out_dir, step, model, raw_model, optimizer, scheduler, reader, run, info) -> str | None:
    model_sd, optim_sd = _state_dicts(model, raw_model, optimizer, run)
    ranks = gather_objects({"data": reader.state_dict(), "rng": rng_state()}, info)
    if not info.is_main:
        return None
    payload = {"model": model_sd, "optimizer": optim_sd, "scheduler": scheduler.state_dict(), "step": step,
               "ranks": ranks, "world_size": info.world_size, "fingerprint": reader.fingerprint,
               "config": to_dict(run), "format": CHECKPOINT_FORMAT}
    return save_checkpoint(out_dir, step, payload, keep=run.train.keep_checkpoints)

