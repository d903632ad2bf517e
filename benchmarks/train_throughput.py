"""Training throughput: assay's training step vs transformers' LlamaForCausalLM, same model, batch, optimizer.

The model is the ~10M-parameter phi-3-mini-style preset (`mini-10m`). Both sides run a full step (forward,
fp32 cross-entropy, backward, clipping, AdamW) on the same batch; the peer is the same weights converted
to LlamaForCausalLM (SDPA attention). Rounds alternate A B A B ... because the machine is shared and
noisy; the median of the per-round ratios is the figure. MFU is against an fp32 matmul peak measured in
the same run.

    .venv/bin/python benchmarks/train_throughput.py                 # eager vs eager
    .venv/bin/python benchmarks/train_throughput.py --compile        # assay with torch.compile too
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from assay.trainer.config import RunConfig, TrainConfig  # noqa: E402
from assay.trainer.convert import to_hf  # noqa: E402
from assay.trainer.distributed import DistInfo  # noqa: E402
from assay.trainer.loop import make_optimizer, train_step  # noqa: E402
from assay.trainer.model import Decoder  # noqa: E402
from assay.trainer.peak import measure_matmul_peak  # noqa: E402
from assay.trainer.presets import preset_config  # noqa: E402
from assay.trainer.schedule import make_scheduler  # noqa: E402
from assay.trainer.sizing import describe, flops_per_token  # noqa: E402


def assay_stepper(run: RunConfig, model: Decoder, compiled: bool):
    optimizer = make_optimizer(model, run, "cpu")
    scheduler = make_scheduler(optimizer, run.train, 10**6)
    forward = torch.compile(model) if compiled else model
    info = DistInfo()

    def step(batch):
        return train_step(forward, model, optimizer, scheduler, [batch], run, info)["loss"]

    return step


def transformers_stepper(run: RunConfig, hf_model):
    optimizer = make_optimizer(hf_model, run, "cpu")
    scheduler = make_scheduler(optimizer, run.train, 10**6)

    def step(batch):
        logits = hf_model(input_ids=batch[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf_model.parameters(), run.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        return loss.item()

    return step


def timed(step, batches) -> float:
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mini-10m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=1, help="steps per round per side")
    ap.add_argument("--compile", action="store_true", help="also time assay with torch.compile")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is steadier "
                                                            "when other jobs share the cores")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = preset_config(args.preset)
    run = RunConfig(model=cfg, train=TrainConfig(lr=1e-3, warmup_steps=0, schedule="constant"))
    ours = Decoder(cfg).train()
    peer = to_hf(ours, "llama").train()  # same initial weights
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1),
                             generator=gen) for _ in range(args.steps)]
    sides = {"transformers": transformers_stepper(run, peer), "assay": assay_stepper(run, ours, False)}
    if args.compile:
        compiled_model = Decoder(cfg).train()
        compiled_model.load_state_dict(ours.state_dict())
        sides["assay+compile"] = assay_stepper(run, compiled_model, True)
    for name, step in sides.items():  # warm-up (and compilation) outside the timed rounds
        t0 = time.perf_counter()
        timed(step, batches[:1] * 2)
        print(f"warm-up {name}: {time.perf_counter() - t0:.1f}s", flush=True)

    tokens = args.batch * args.seq_len * args.steps
    times: dict[str, list[float]] = {name: [] for name in sides}
    peaks = []
    for r in range(args.rounds):
        peaks.append(measure_matmul_peak("cpu", torch.float32, n=1024, repeats=3))
        for name, step in sides.items():
            times[name].append(timed(step, batches))
        print(f"round {r + 1}: " + "  ".join(f"{n} {tokens / t[-1]:,.0f} tok/s" for n, t in times.items()), flush=True)

    peak = max(peaks)
    fpt = flops_per_token(cfg, args.seq_len)
    print(f"\nmodel {args.preset}: {describe(cfg, args.seq_len)}; batch {args.batch} x {args.seq_len}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"measured fp32 matmul peak (1024^3, best of run): {peak / 1e9:.1f} GFLOP/s")
    base = times["transformers"]
    for name, ts in times.items():
        tok_s = tokens / statistics.median(ts)
        ratio = statistics.median(b / t for b, t in zip(base, ts))
        print(f"{name:>14}: median {tok_s:,.0f} tok/s  MFU {100 * tok_s * fpt / peak:.1f}%  "
              f"median ratio vs transformers {ratio:.2f}x")


if __name__ == "__main__":
    main()
