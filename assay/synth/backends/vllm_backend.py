"""Offline vLLM batch generation for GPU machines (optional extra `gpu`; vllm is imported only here, lazily).

The argument mapping is plain functions so it is testable where vllm is not installed.
"""
from __future__ import annotations

import math
import os

from assay.synth.backends.base import (
    TOP_ALTERNATIVES,
    Backend,
    Completion,
    ContinuationScore,
    Messages,
    Timer,
    suffix_score,
)
from assay.synth.backends.transformers_backend import model_fingerprint, resolve_model_path
from assay.synth.config import BackendConfig, Sampling


def llm_kwargs(cfg: BackendConfig) -> dict:
    """Keyword arguments for `vllm.LLM(...)` from our backend config."""
    directory, gguf = resolve_model_path(cfg.model, cfg.gguf_file)
    kwargs = {"model": f"{directory}/{gguf}" if gguf else directory,
              "tensor_parallel_size": cfg.tensor_parallel_size,
              "enable_prefix_caching": cfg.enable_prefix_caching,
              "gpu_memory_utilization": cfg.gpu_memory_utilization,
              "dtype": "auto" if cfg.dtype == "float32" else cfg.dtype}
    if gguf and os.path.exists(os.path.join(directory, "tokenizer.json")):
        kwargs["tokenizer"] = directory  # vLLM reads a GGUF's own tokenizer slowly; prefer the HF one beside it
    if cfg.max_model_len:
        kwargs["max_model_len"] = cfg.max_model_len
    kwargs.update(cfg.extra)
    return kwargs


def sampling_kwargs(sampling: Sampling, seed: int) -> dict:
    """Keyword arguments for `vllm.SamplingParams(...)` for one prompt."""
    kwargs = {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
              "top_p": sampling.top_p, "seed": seed}
    if sampling.stop:
        kwargs["stop"] = list(sampling.stop)
    if sampling.logprobs:
        kwargs["logprobs"] = 0  # vLLM returns the chosen token's logprob (plus top-0 alternatives)
    return kwargs


def score_sampling_kwargs() -> dict:
    """One greedy token with the top alternatives' logprobs: the rubric's answer-position distribution."""
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": TOP_ALTERNATIVES}


def continuation_request(messages: Messages, continuation: str) -> tuple[Messages, dict, dict]:
    """(conversation, SamplingParams kwargs, chat kwargs) that score `continuation` as the assistant's answer:
    the answer is left open (continue_final_message) and vLLM returns every prompt token's logprob."""
    conversation = [*messages, {"role": "assistant", "content": continuation}]
    return (conversation, {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0},
            {"add_generation_prompt": False, "continue_final_message": True})


def prompt_logprob_entries(prompt_token_ids: list[int], prompt_logprobs: list) -> list[tuple[str, float, int | None]]:
    """vLLM's per-position {token id: Logprob} dicts -> (decoded token, logprob, rank) of the prompt's own tokens
    (the first position has none and is skipped)."""
    entries = []
    for tid, step in zip(prompt_token_ids, prompt_logprobs):
        if not step:
            continue
        lp = step[tid]
        entries.append((lp.decoded_token or "", float(lp.logprob), getattr(lp, "rank", None)))
    return entries


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError("the vllm backend needs vLLM on a CUDA machine: pip install 'assay[gpu]' "
                          "(or use --backend transformers / openai)") from exc
    return vllm


class VLLMBackend(Backend):
    kind = "vllm"

    @classmethod
    def check_config(cls, cfg: BackendConfig) -> None:
        resolve_model_path(cfg.model, cfg.gguf_file)

    def __init__(self, cfg: BackendConfig):
        super().__init__(cfg)
        vllm = _import_vllm()
        self._vllm = vllm
        self.llm = vllm.LLM(**llm_kwargs(cfg))
        self._id = model_fingerprint(*resolve_model_path(cfg.model, cfg.gguf_file))

    @property
    def model_id(self) -> str:
        return self._id

    def generate(self, prompts: list[Messages], sampling: Sampling, seeds: list[int] | None = None) -> list[Completion]:
        seeds = seeds or [sampling.seed] * len(prompts)
        params = [self._vllm.SamplingParams(**sampling_kwargs(sampling, s)) for s in seeds]
        with Timer() as timer:
            outputs = self.llm.chat(prompts, params, use_tqdm=False)
        result = []
        for out in outputs:
            gen = out.outputs[0]
            lps = None
            if sampling.logprobs and gen.logprobs:
                lps = [step[tok].logprob for step, tok in zip(gen.logprobs, gen.token_ids)]
            result.append(Completion(text=gen.text.strip(), tokens_in=len(out.prompt_token_ids),
                                     tokens_out=len(gen.token_ids), finish_reason=gen.finish_reason or "stop",
                                     token_logprobs=lps))
        self.usage.add(sum(c.tokens_in for c in result), sum(c.tokens_out for c in result), timer.seconds, len(result))
        return result

    def next_token_probs(self, prompts: list[Messages], candidates: list[str]) -> list[dict[str, float]]:
        params = self._vllm.SamplingParams(**score_sampling_kwargs())
        with Timer() as timer:
            outputs = self.llm.chat(prompts, params, use_tqdm=False)
        result = []
        for out in outputs:
            probs = {c: 0.0 for c in candidates}
            step = out.outputs[0].logprobs[0] if out.outputs[0].logprobs else {}
            for entry in step.values():
                tok = (entry.decoded_token or "").strip()
                if tok in probs:
                    probs[tok] += math.exp(entry.logprob)
            result.append(probs)
        self.usage.add(sum(len(o.prompt_token_ids) for o in outputs), len(outputs), timer.seconds, len(outputs))
        return result

    def continuation_logprobs(self, prompts: list[Messages], continuations: list[str]) -> list[ContinuationScore]:
        requests = [continuation_request(m, c) for m, c in zip(prompts, continuations, strict=True)]
        params = self._vllm.SamplingParams(**requests[0][1]) if requests else None
        with Timer() as timer:
            outputs = self.llm.chat([r[0] for r in requests], params, use_tqdm=False, **requests[0][2]) \
                if requests else []
        result = [suffix_score(prompt_logprob_entries(out.prompt_token_ids, out.prompt_logprobs), cont)
                  for out, cont in zip(outputs, continuations)]
        self.usage.add(sum(len(o.prompt_token_ids) for o in outputs), len(outputs), timer.seconds, len(outputs))
        return result
