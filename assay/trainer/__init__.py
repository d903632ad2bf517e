"""Proxy-model trainer: the phi-3 decoder family, transformers interop, the resumable loop, evaluations.

config (dataclasses, TOML) -> presets (sizes, FLOPs) -> model (layers, attention, moe) -> convert (transformers)
-> loop (schedule, checkpoint, distributed, metrics) -> evaluate (eval_heldout, eval_cloze).
token_shards / tokenizer define the data format the loop reads.
"""
