"""A checkpoint as a transformers folder (config.json, model.safetensors, tokenizer files).

Why: a proxy model is only useful to the rest of the ecosystem (lm-evaluation-harness, vLLM, the HF hub
tooling) in the layout `AutoModelForCausalLM.from_pretrained` reads. The weights go through
assay/trainer/convert.py (logits equal within 1e-4; Phi-3-small style models through
assay/trainer/convert_phi3_small.py,
in the layout its remote code reads), the tokenizer is the one stored with the token shards the model
was trained on, and the folder is built next to its destination and renamed into place, so a killed export
never leaves a half-written model behind.
"""
from __future__ import annotations

import json
import os

from assay.groundwork.atomic import atomic_folder
from assay.groundwork.config import ConfigError

EXPORT_FORMATS = ("hf",)


def default_family(cfg) -> str:
    """The class a config maps to: Phi-3-small's layout for GEGLU/blocksparse, PhiMoE with experts, Phi3
    without biases, else Llama."""
    if cfg.mlp == "geglu" or cfg.dense_every:
        return "phi3small"
    if cfg.n_experts:
        return "phimoe"
    return "llama" if cfg.bias else "phi3"


def _tokenizer_file(data_dir: str | None) -> str | None:
    from assay.trainer.token_shards import ShardFolder

    if not data_dir or data_dir == "synthetic" or not ShardFolder.is_finished(data_dir):
        return None
    return ShardFolder(data_dir).tokenizer_path


def export_checkpoint(path: str, out_dir: str, fmt: str = "hf", family: str | None = None,
                      data_dir: str | None = None, overwrite: bool = False) -> dict:
    """Write checkpoint `path` (a step-*.pt file or a training output folder) to `out_dir`; returns a summary.

    The tokenizer comes from `data_dir` (default: the token shards the run trained on); a run on synthetic
    tokens has none, and the folder then holds the model only (said in the summary)."""
    from assay.trainer.checkpoint import load_trained_model
    from assay.trainer.convert import to_hf
    from assay.trainer.tokenizer import eos_id, load_tokenizer

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another --out or pass --overwrite")
    model, run, ckpt = load_trained_model(path)
    family = family or default_family(run.model)
    hf_model = None if family == "phi3small" else to_hf(model.float(), family)
    tok_path = _tokenizer_file(data_dir if data_dir is not None else run.train.data)

    with atomic_folder(out_dir) as staging:
        if hf_model is None:  # Phi-3-small has no transformers class: its reference layout, for its remote code
            from assay.trainer.convert_phi3_small import save_phi3_small_folder

            parameters = save_phi3_small_folder(model.float(), staging)
        else:
            hf_model.save_pretrained(staging, safe_serialization=True)
            parameters = sum(p.numel() for p in hf_model.parameters())
        if tok_path is not None:
            from transformers import PreTrainedTokenizerFast

            tok = load_tokenizer(tok_path)
            eos = tok.id_to_token(eos_id(tok))
            _set_special_ids(staging, eos_id(tok))
            fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=eos,
                                           model_max_length=run.model.max_seq_len)
            fast.save_pretrained(staging)
        with open(os.path.join(staging, "assay_export.json"), "w", encoding="utf-8") as fh:
            json.dump({"checkpoint": os.path.abspath(path), "step": int(ckpt["step"]), "family": family,
                       "tokenizer": tok_path}, fh, indent=2)
    return {"out": out_dir, "family": family, "step": int(ckpt["step"]), "tokenizer": tok_path is not None,
            "parameters": parameters}


def _set_special_ids(folder: str, eos: int) -> None:
    """config.json / generation_config.json name the tokenizer's end-of-text id as bos, eos and pad, so
    `generate()` and vLLM stop where the model learned to (transformers' class defaults name ids that the
    tokenizer does not have)."""
    for name in ("config.json", "generation_config.json"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        data.update(bos_token_id=eos, eos_token_id=eos)
        if name == "config.json":
            data["pad_token_id"] = None
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
