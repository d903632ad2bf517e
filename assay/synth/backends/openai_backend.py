"""Client for any OpenAI-compatible chat-completions server (`vllm serve`, `assay synth serve`, ...).

Requests run on a bounded thread pool (`concurrency`); connection errors, timeouts, 429 and 5xx are retried
with exponential backoff; any other HTTP error stops with the server's message and what to check.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

from assay.synth.backends.base import (
    TOP_ALTERNATIVES,
    Backend,
    BackendUnavailable,
    Completion,
    ContinuationScore,
    Messages,
    Timer,
    suffix_score,
)
from assay.synth.config import BackendConfig, Sampling

#: statuses worth a retry: timeout, conflict, rate limit and server errors, as the official `openai` client retries
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
#: characters of a failed response's body quoted in the error (enough for a server's message, not a page of HTML)
ERROR_BODY_CHARS = 500


class BackendHTTPError(RuntimeError):
    """The server refused a request."""


class ServerUnavailable(BackendHTTPError, BackendUnavailable):
    """The server stayed unreachable (or overloaded) through every retry: stop the run, rerun later."""


def chat_payload(model: str, messages: Messages, sampling: Sampling, seed: int) -> dict:
    """The request body for one chat completion (our Sampling -> OpenAI field names)."""
    body = {"model": model, "messages": messages, "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": seed}
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.logprobs:
        body["logprobs"] = True
    return body


def continuation_payload(model: str, messages: Messages, continuation: str) -> dict:
    """Score `continuation` as the assistant's answer: vLLM's chat extensions (continue_final_message,
    prompt_logprobs), also spoken by `assay synth serve`. Plain OpenAI endpoints have no equivalent."""
    return {"model": model, "messages": [*messages, {"role": "assistant", "content": continuation}],
            "max_tokens": 1, "temperature": 0.0, "add_generation_prompt": False, "continue_final_message": True,
            "prompt_logprobs": 0}


def prompt_logprob_entries(prompt_logprobs: list) -> list[tuple[str, float, int | None]]:
    """The response's prompt_logprobs (per position: null or {token id: {logprob, rank, decoded_token}}, the
    prompt's own token first) -> (decoded token, logprob, rank)."""
    entries = []
    for step in prompt_logprobs or []:
        if not step:
            continue
        first = next(iter(step.values()))
        entries.append((first.get("decoded_token") or "", float(first["logprob"]), first.get("rank")))
    return entries


class OpenAIBackend(Backend):
    kind = "openai"

    @classmethod
    def check_config(cls, cfg: BackendConfig) -> None:
        if not cfg.base_url.startswith(("http://", "https://")):
            raise ValueError(f"backend.base_url must be an http(s) URL, got {cfg.base_url!r}")

    def __init__(self, cfg: BackendConfig):
        super().__init__(cfg)
        import httpx

        headers = {}
        key = os.environ.get(cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/"), headers=headers,
                                   timeout=httpx.Timeout(cfg.timeout_s),
                                   limits=httpx.Limits(max_connections=cfg.concurrency))
        self.served_model = cfg.served_model or self._first_model()

    @property
    def model_id(self) -> str:
        return f"openai:{self.served_model}"

    def _first_model(self) -> str:
        data = self._request("GET", "/models")
        models = [m["id"] for m in data.get("data", [])]
        if not models:
            raise BackendHTTPError(f"{self.cfg.base_url}/models lists no model; pass --served-model NAME")
        return models[0]

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        last = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self.client.request(method, path, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: maybe transient
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in RETRYABLE_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:ERROR_BODY_CHARS]}"
                continue
            if resp.status_code >= 400:
                raise BackendHTTPError(f"{method} {self.cfg.base_url}{path} failed with HTTP {resp.status_code}: "
                                       f"{resp.text[:ERROR_BODY_CHARS]} (check the model name, the request parameters "
                                       f"and the API key in ${self.cfg.api_key_env})")
            return resp.json()
        raise ServerUnavailable(f"{method} {self.cfg.base_url}{path} failed after {self.cfg.retries + 1} attempts "
                               f"({last}); is the server running at {self.cfg.base_url}?")

    def _map(self, fn, items):
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(fn, items))

    def generate(self, prompts: list[Messages], sampling: Sampling, seeds: list[int] | None = None) -> list[Completion]:
        seeds = seeds or [sampling.seed] * len(prompts)

        def one(args):
            messages, seed = args
            with Timer() as timer:
                data = self._request("POST", "/chat/completions",
                                     chat_payload(self.served_model, messages, sampling, seed))
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            logprobs = None
            if sampling.logprobs and choice.get("logprobs"):
                logprobs = [t["logprob"] for t in choice["logprobs"].get("content") or []]
            comp = Completion(text=(choice["message"].get("content") or "").strip(),
                              tokens_in=int(usage.get("prompt_tokens", 0)),
                              tokens_out=int(usage.get("completion_tokens", 0)),
                              finish_reason=choice.get("finish_reason") or "stop", token_logprobs=logprobs)
            return comp, timer.seconds

        results = self._map(one, list(zip(prompts, seeds)))
        for comp, seconds in results:
            self.usage.add(comp.tokens_in, comp.tokens_out, seconds)
        return [c for c, _ in results]

    def next_token_probs(self, prompts: list[Messages], candidates: list[str]) -> list[dict[str, float]]:
        """One-token completions with top logprobs; candidates missing from the top list get probability 0."""

        def one(messages):
            body = {"model": self.served_model, "messages": messages, "max_tokens": 1, "temperature": 0.0,
                    "logprobs": True, "top_logprobs": TOP_ALTERNATIVES}
            with Timer() as timer:
                data = self._request("POST", "/chat/completions", body)
            content = (data["choices"][0].get("logprobs") or {}).get("content") or []
            top = content[0].get("top_logprobs", []) if content else []
            probs = {c: 0.0 for c in candidates}
            for entry in top:
                tok = entry["token"].strip()
                if tok in probs:
                    probs[tok] += math.exp(entry["logprob"])
            usage = data.get("usage") or {}
            self.usage.add(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), timer.seconds)
            return probs

        return self._map(one, prompts)

    def continuation_logprobs(self, prompts: list[Messages], continuations: list[str]) -> list[ContinuationScore]:
        def one(pair):
            messages, continuation = pair
            with Timer() as timer:
                data = self._request("POST", "/chat/completions",
                                     continuation_payload(self.served_model, messages, continuation))
            if "prompt_logprobs" not in data:
                raise BackendHTTPError(f"{self.cfg.base_url} returned no prompt_logprobs: scoring continuations needs "
                                       f"a server with vLLM's chat extensions (vllm serve, assay synth serve)")
            score = suffix_score(prompt_logprob_entries(data["prompt_logprobs"]), continuation)
            usage = data.get("usage") or {}
            self.usage.add(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), timer.seconds)
            return score

        return self._map(one, list(zip(prompts, continuations, strict=True)))

    def close(self) -> None:
        self.client.close()
