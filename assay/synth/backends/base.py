"""One interface for every LLM backend: batched chat generation, probabilities of given next tokens, and
log-probabilities of given continuations (an assistant answer scored under the model).

Prompts are chat conversations (lists of {"role", "content"}); each backend applies the model's chat
template. Every backend counts tokens in/out and seconds in its `usage`.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from assay.synth.config import BackendConfig, Sampling

Messages = list[dict[str, str]]
#: alternatives read at the answer position when scoring a rubric: the OpenAI API's largest `top_logprobs`, and
#: vLLM's default `max_logprobs`
TOP_ALTERNATIVES = 20


class BackendUnavailable(RuntimeError):
    """The backend cannot answer anything right now (server down through every retry): the run stops, and a
    rerun resumes from the request cache. Any other error concerns one request and goes to the ledger."""


@dataclass
class Completion:
    """One generated answer, with what it cost and, when asked for, its tokens' log-probabilities."""

    text: str  # the answer, stripped, cut at the first stop string
    tokens_in: int  # prompt tokens (chat template included)
    tokens_out: int  # generated tokens
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    token_logprobs: list[float] | None = None  # each generated token's log-probability, when logprobs were asked for
    tokens: list[str] | None = None  # the generated tokens' strings, when logprobs were asked for
    top_logprobs: list[list[list]] | None = None  # per step: [[token string, logprob], ...] best first


@dataclass
class ContinuationScore:
    """log P(continuation | prompt) where the continuation is the assistant's answer to a chat prompt."""

    logprob: float  # summed over the continuation's tokens
    tokens: list[str]  # the continuation's tokens, as decoded strings
    token_logprobs: list[float]  # each of those tokens' log-probability
    ranks: list[int | None]  # 1 = the model's top choice at that position; None when the backend cannot say
    token_ids: list[int] | None = None  # their ids, where the backend has the tokenizer
    tokens_in: int = 0  # prompt tokens before the continuation

    @property
    def greedy(self) -> bool | None:
        """Every token was the top choice (lm-evaluation-harness's is_greedy); None when ranks are unknown."""
        return None if any(r is None for r in self.ranks) else all(r == 1 for r in self.ranks)


def suffix_score(entries: list[tuple[str, float, int | None]], continuation: str) -> ContinuationScore:
    """The trailing (decoded token, logprob, rank) entries of a rendered prompt that spell `continuation`.

    Servers and vLLM return log-probabilities for every token of the prompt they rendered (chat template
    included); the continuation is the rendered prompt's end. Walks back until the tokens cover it, and
    checks that they do spell it (a server that ignored continue_final_message would not).
    """
    target = continuation.strip()
    if not target:
        raise ValueError("the continuation to score is empty")
    picked: list[tuple[str, float, int | None]] = []
    text = ""
    for entry in reversed(entries):
        if len(text.strip()) >= len(target):
            break
        picked.append(entry)
        text = entry[0] + text
    if not text.rstrip().endswith(target):
        raise ValueError(f"the scored prompt does not end with the continuation ({text[-80:]!r} vs "
                         f"{target[-80:]!r}); the server must support continue_final_message and prompt_logprobs")
    picked.reverse()
    return ContinuationScore(logprob=sum(lp for _, lp, _ in picked), tokens=[t for t, _, _ in picked],
                             token_logprobs=[lp for _, lp, _ in picked], ranks=[r for _, _, r in picked],
                             tokens_in=len(entries) - len(picked))


@dataclass
class Usage:
    """Tokens and time spent by one backend; merged across workers for the run report."""

    requests: int = 0  # prompts answered or scored by the model
    tokens_in: int = 0  # prompt tokens read
    tokens_out: int = 0  # tokens generated
    seconds: float = 0.0  # wall time inside the model's calls
    cache_hits: int = 0  # requests answered from the request cache instead

    def add(self, tokens_in: int, tokens_out: int, seconds: float, requests: int = 1) -> None:
        self.requests += requests
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.seconds += seconds

    def to_dict(self) -> dict:
        tps = self.tokens_out / self.seconds if self.seconds > 0 else 0.0
        return {"requests": self.requests, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "seconds": round(self.seconds, 3), "tokens_out_per_s": round(tps, 3), "cache_hits": self.cache_hits}


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


class Backend(ABC):
    kind: str = "backend"  # its key in assay.synth.backends.BACKENDS and the value of BackendConfig.kind

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.usage = Usage()

    @classmethod  # noqa: B027 (an optional hook)
    def check_config(cls, cfg: BackendConfig) -> None:
        """Raise, on the driver and before any worker starts, when this backend cannot work with `cfg` (a
        missing model, a malformed URL); cheap: loads nothing."""

    @property
    def batch_size(self) -> int:
        """Prompts per generate call: callers batch their requests by it."""
        return self.cfg.batch_size

    @property
    @abstractmethod
    def model_id(self) -> str:
        """A stable identity of the model (goes into provenance and the request cache key)."""

    @abstractmethod
    def generate(self, prompts: list[Messages], sampling: Sampling, seeds: list[int] | None = None) -> list[Completion]:
        """One completion per prompt; `seeds` (one per prompt) override sampling.seed for reproducibility."""

    @abstractmethod
    def next_token_probs(self, prompts: list[Messages], candidates: list[str]) -> list[dict[str, float]]:
        """P(first generated token = candidate) for each candidate string, at the answer position."""

    @abstractmethod
    def continuation_logprobs(self, prompts: list[Messages], continuations: list[str]) -> list[ContinuationScore]:
        """log P(continuation | prompt) per pair: the continuation scored as the assistant's answer."""

    @property
    def context_length(self) -> int | None:
        """Tokens the model attends to (prompt + completion); None when the backend cannot say."""
        return None

    def prompt_tokens(self, messages: Messages, continuation: str | None = None, cap: int | None = None) -> int:
        """Tokens of the chat prompt (plus `continuation`, an answer to score). This default counts UTF-8 bytes,
        an upper bound for byte-level tokenizers; backends with a tokenizer count exactly."""
        texts = [m["content"] for m in messages] + ([continuation] if continuation else [])
        return sum(len(t.encode("utf-8")) for t in texts)

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Release the model or connections."""


def expected_score(probs: dict[str, float]) -> float | None:
    """Expectation of integer labels ("0".."5") under their renormalised probabilities; None if all are 0."""
    total = sum(probs.values())
    if total <= 0 or not math.isfinite(total):
        return None
    return sum(int(k) * p for k, p in probs.items()) / total


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut text at the first stop string; (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
