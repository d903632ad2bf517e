"""`assay synth serve`: an OpenAI-compatible chat-completions server backed by the transformers backend.

Endpoints: GET /v1/models, GET /health, POST /v1/chat/completions (non-streaming; max_tokens or
max_completion_tokens, temperature, top_p, seed, stop, logprobs, top_logprobs; n = 1). Concurrent requests
are gathered for up to `batch_wait_s` and answered as one batch per distinct set of sampling parameters.
vLLM's chat extensions for scoring are understood too: with `continue_final_message` (and
`add_generation_prompt` false) the final assistant message is scored, not continued, and the response
carries `prompt_logprobs` (null for the tokens before that message, which this server does not score).
Bad requests get HTTP 400 with an OpenAI-style error body saying what to fix.
"""
from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from synth.backends.base import Backend
from synth.config import Sampling


class RequestError(ValueError):
    """A client mistake: answered with HTTP 400."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    served_model: str | None = None  # default: the model file or directory name
    batch_wait_s: float = 0.02
    max_tokens_limit: int = 4096


def parse_score_request(messages: list[dict], body: dict) -> tuple[list[dict], str]:
    """A continue_final_message request -> (prompt messages, the assistant answer to score)."""
    if body.get("add_generation_prompt", False):
        raise RequestError("continue_final_message needs add_generation_prompt=false")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise RequestError("continue_final_message needs a final assistant message with the text to score")
    if len(messages) < 2:
        raise RequestError("continue_final_message needs a prompt before the final assistant message")
    return messages[:-1], messages[-1]["content"]


def parse_chat_request(body: dict, default_max: int, limit: int) -> tuple[list[dict], Sampling]:
    """OpenAI chat-completions request -> (messages, Sampling); RequestError says what is wrong."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise RequestError("each message needs a role (system, user or assistant) and a string content")
    if body.get("stream"):
        raise RequestError("streaming is not supported by this server; send stream=false")
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported; send several requests instead")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    max_new = body.get("max_completion_tokens") or body.get("max_tokens") or default_max
    top = int(body.get("top_logprobs") or 0)
    try:
        sampling = Sampling(max_new_tokens=min(int(max_new), limit), temperature=float(body.get("temperature", 1.0)),
                            top_p=float(body.get("top_p", 1.0)), seed=int(body.get("seed") or 0),
                            logprobs=bool(body.get("logprobs")), top_logprobs=max(0, min(top, 20)), stop=stop)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad sampling parameter: {exc}") from None
    return [{"role": m["role"], "content": m["content"]} for m in messages], sampling


class Batcher:
    """Collects concurrent requests and runs them through the backend in batches (one thread owns the model)."""

    def __init__(self, backend: Backend, wait_s: float, batch_size: int):
        self.backend, self.wait_s, self.batch_size = backend, wait_s, batch_size
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="assay-serve-batcher").start()

    def submit(self, messages, sampling: Sampling) -> Future:
        fut: Future = Future()
        self.queue.put((messages, sampling, fut))
        return fut

    def submit_score(self, messages, continuation: str) -> Future:
        """Score `continuation` as the answer to `messages` (a `continue_final_message` request)."""
        fut: Future = Future()
        self.queue.put((messages, continuation, fut))
        return fut

    def _loop(self) -> None:
        while True:
            pending = [self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(pending) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                try:
                    pending.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
            groups: dict = {}
            scores = [r for r in pending if isinstance(r[1], str)]
            for messages, sampling, fut in pending:
                if not isinstance(sampling, str):
                    groups.setdefault(sampling.with_seed(0), []).append((messages, sampling.seed, fut))
            if scores:
                self._answer(lambda: self.backend.continuation_logprobs([r[0] for r in scores],
                                                                        [r[1] for r in scores]), scores)
            for sampling, reqs in groups.items():
                self._answer(lambda: self.backend.generate([r[0] for r in reqs], sampling,
                                                           seeds=[r[1] for r in reqs]), reqs)

    @staticmethod
    def _answer(run, reqs) -> None:
        try:
            results = run()
        except Exception as exc:  # reported to each waiting client as a 500
            for r in reqs:
                r[2].set_exception(exc)
            return
        for r, result in zip(reqs, results):
            r[2].set_result(result)


def completion_response(comp, model: str, sampling: Sampling) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": comp.text},
              "finish_reason": comp.finish_reason, "logprobs": None}
    if comp.token_logprobs is not None:
        content = []
        for i, (tok, lp) in enumerate(zip(comp.tokens or [], comp.token_logprobs)):
            top = comp.top_logprobs[i] if comp.top_logprobs else []
            content.append({"token": tok, "logprob": lp,
                            "top_logprobs": [{"token": t, "logprob": v} for t, v in top]})
        choice["logprobs"] = {"content": content}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [choice],
            "usage": {"prompt_tokens": comp.tokens_in, "completion_tokens": comp.tokens_out,
                      "total_tokens": comp.tokens_in + comp.tokens_out}}


def score_response(score, model: str) -> dict:
    """A chat response carrying vLLM-style prompt_logprobs for the scored answer's tokens."""
    prompt_logprobs = [None] * score.tokens_in
    for i, (tok, lp, rank) in enumerate(zip(score.tokens, score.token_logprobs, score.ranks)):
        tid = score.token_ids[i] if score.token_ids else i
        prompt_logprobs.append({str(tid): {"logprob": lp, "rank": rank, "decoded_token": tok}})
    n_in = score.tokens_in + len(score.tokens)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "prompt_logprobs": prompt_logprobs,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "length",
                         "logprobs": None}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": 0, "total_tokens": n_in}}


def make_server(backend: Backend, cfg: ServeConfig) -> ThreadingHTTPServer:
    model_name = cfg.served_model or backend.model_id.split("@")[0]
    batcher = Batcher(backend, cfg.batch_wait_s, getattr(getattr(backend, "cfg", None), "batch_size", 8))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: one line per request would swamp batch jobs' logs
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model",
                                                             "owned_by": "assay"}]})
            elif self.path.rstrip("/") == "/health":
                self._send(200, {"status": "ok", "model": model_name})
            else:
                self._error(404, f"no route {self.path}; use /v1/chat/completions or /v1/models", "not_found")

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}; POST /v1/chat/completions", "not_found")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise RequestError("the request body must be a JSON object")
                if body.get("model") not in (None, model_name):
                    raise RequestError(f"model {body.get('model')!r} is not served here; this server has {model_name!r}")
                messages, sampling = parse_chat_request(body, 256, cfg.max_tokens_limit)
                scoring = parse_score_request(messages, body) if body.get("continue_final_message") else None
            except json.JSONDecodeError as exc:
                self._error(400, f"the request body is not JSON: {exc.msg}", "invalid_request_error")
                return
            except RequestError as exc:
                self._error(400, str(exc), "invalid_request_error")
                return
            try:
                if scoring:
                    score = batcher.submit_score(*scoring).result()
                else:
                    comp = batcher.submit(messages, sampling).result()
            except Exception as exc:
                self._error(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
                return
            self._send(200, score_response(score, model_name) if scoring else
                       completion_response(comp, model_name, sampling))

    return ThreadingHTTPServer((cfg.host, cfg.port), Handler)
