"""Why plans set `torch_threads = 1` for tiny proxies: train one demo-sized cell (the `s` size of
plans/sample_demo.toml, synthetic tokens) with torch's default thread count (the peer) and with one
thread, in the same run, and print the wall-time ratio.

    .venv/bin/python benchmarks/ablate_threads.py [--steps 40]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from assay.trainer.config import EvalConfig, ModelConfig, RunConfig, TrainConfig
from assay.trainer.loop import train


def one_cell(threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    model = ModelConfig(vocab_size=2048, d_model=128, n_layers=3, n_heads=4, n_kv_heads=4, ffn_dim=344,
                        max_seq_len=128, tie_embeddings=True)
    with tempfile.TemporaryDirectory() as out:
        run = RunConfig(model=model, train=TrainConfig(data="synthetic", out_dir=out, micro_batch=8, max_steps=steps,
                                                       synthetic_seq_len=128, synthetic_sequences=8 * steps,
                                                       checkpoint_every=steps, progress=False, peak_flops=1e11),
                        eval=EvalConfig(heldout=False))
        start = time.perf_counter()
        train(run, resume=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    default = torch.get_num_threads()
    peer = one_cell(default, args.steps)
    single = one_cell(1, args.steps)
    print(f"torch default ({default} threads): {peer:.2f} s for {args.steps} steps")
    print(f"torch_threads = 1: {single:.2f} s")
    print(f"speed-up of 1 thread over the default: {peer / single:.2f}x")


if __name__ == "__main__":
    main()
