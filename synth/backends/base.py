"""One interface for every LLM backend: batched chat generation and probabilities of given next tokens.

Prompts are chat conversations (lists of {"role", "content"}); each backend applies the model's chat
template. Every backend counts tokens in/out and seconds in its `usage`.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from synth.config import Sampling

Messages = list[dict[str, str]]


class BackendUnavailable(RuntimeError):
    """The backend cannot answer anything right now (server down through every retry): the run stops, and a
    rerun resumes from the request cache. Any other error concerns one request and goes to the ledger."""


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    token_logprobs: list[float] | None = None
    tokens: list[str] | None = None  # the generated tokens' strings, when logprobs were asked for
    top_logprobs: list[list[list]] | None = None  # per step: [[token string, logprob], ...] best first


@dataclass
class Usage:
    """Tokens and time spent by one backend; merged across workers for the run report."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    cache_hits: int = 0

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
    kind: str = "backend"

    def __init__(self) -> None:
        self.usage = Usage()

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

    def close(self) -> None:
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
