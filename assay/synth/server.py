"""`assay synth serve`: an OpenAI-compatible chat-completions server backed by the transformers backend.

Endpoints: GET /v1/models, GET /health, POST /v1/chat/completions (non-streaming; max_tokens or
max_completion_tokens, temperature, top_p, seed, stop, logprobs, top_logprobs; n = 1). Concurrent requests
are gathered for up to `batch_wait_s` and answered as one batch per distinct set of sampling parameters.
vLLM's chat extensions for scoring are understood too: with `continue_final_message` (and
`add_generation_prompt` false) the final assistant message is scored, not continued, and the response
carries `prompt_logprobs` (null for the tokens before that message, which this server does not score).

Hardening (a web page in the user's browser can reach a local server, and any local process can send it
anything, so every request is checked):
- binds 127.0.0.1 by default;
- the Host header must name the bound address (DNS-rebinding defence): for a loopback bind `localhost`,
  `127.0.0.1` and `[::1]`, with or without the port; for any other bind the bound address and the names in
  `allowed_hosts` (`--allowed-host`). Anything else, or no Host, gets 421;
- POST needs `Content-Type: application/json` (415 otherwise: a cross-site text/plain form post skips the
  CORS preflight) and a Content-Length within `max_body_bytes` (411 missing, 400 invalid, 413 too large,
  answered without reading the body); no CORS headers are ever sent;
- connections: bounded slots, a total read deadline per request, eviction of slow readers when the slots are
  full, and a JSON 4xx for every malformed request (assay/synth/serve_conn.py);
- every field of the body is type- and range-checked before the model thread sees it (assay/synth/serve_request.py),
  and the prompt must fit `max_prompt_tokens` (default: the model's context) with room to generate: 400;
- the model thread survives any error: a batch that fails is rerun one request at a time, so only the
  request at fault gets its 500, and each request's seed drives only its own sampling;
- with `api_key` (`--api-key` or $ASSAY_SERVE_API_KEY) every request, /health included, needs
  `Authorization: Bearer KEY` (401 otherwise). The openai backend sends $OPENAI_API_KEY (its `api_key_env`).
The key is never logged or echoed.
"""
from __future__ import annotations

import dataclasses
import hmac
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from assay.synth.backends.base import Backend
from assay.synth.config import Sampling
from assay.synth.serve_conn import DRAIN_LIMIT, BoundedServer, BusyHandler, JsonHandler, ReadDeadline, error_body
from assay.synth.serve_request import RequestError, asks_max_tokens, load_body, parse_chat_request, parse_score_request

__all__ = ["API_KEY_ENV", "DRAIN_LIMIT", "LOOPBACK", "Batcher", "BoundedServer", "BusyHandler", "RequestError",
           "ServeConfig", "accepted_hosts", "bearer_ok", "error_body", "fit_context", "make_server",
           "parse_chat_request", "parse_score_request"]

API_KEY_ENV = "ASSAY_SERVE_API_KEY"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
ROUTES = {"/v1/models": "GET", "/models": "GET", "/health": "GET", "/v1/chat/completions": "POST",
          "/chat/completions": "POST"}


@dataclass
class ServeConfig:
    """`assay serve`: where it listens, how it batches, and the bounds every request is held to."""

    host: str = "127.0.0.1"  # address to bind; any other than loopback is reachable from the network
    port: int = 8000  # TCP port
    served_model: str | None = None  # default: the model file or directory name
    batch_wait_s: float = 0.02  # requests arriving within this long are answered as one batch
    max_tokens_limit: int = 4096  # a request's max_tokens is capped at this
    max_prompt_tokens: int | None = None  # default: the model's context; longer prompts get 400
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted besides the bound address
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies get 413
    max_concurrent: int = 64  # connections served at once; more get 503 + Retry-After
    socket_timeout_s: float = 30.0  # per socket read/write: a stalled client loses its slot
    read_deadline_s: float = 10.0  # one request's line, headers and body, in total: later gets 408
    evict_after_s: float = 1.0  # with every slot taken, a connection reading its request this long makes room
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log or an error message

    def __post_init__(self):
        if self.max_concurrent < 1 or self.max_body_bytes < 1 or self.socket_timeout_s <= 0:
            raise ValueError("max_concurrent and max_body_bytes must be >= 1 and socket_timeout_s > 0")
        if self.read_deadline_s <= 0 or self.evict_after_s <= 0:
            raise ValueError("read_deadline_s and evict_after_s must be > 0")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ValueError("max_prompt_tokens must be >= 1 (or None for the model's context)")


class Batcher:
    """Collects concurrent requests and runs them through the backend in batches (one thread owns the model).

    The thread never dies of a request: any error is delivered to the requests it concerns. A batch that
    fails is rerun one request at a time, so a request that breaks the backend fails alone."""

    def __init__(self, backend: Backend, wait_s: float, batch_size: int):
        self.backend, self.wait_s, self.batch_size = backend, wait_s, batch_size
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="assay-serve-batcher")
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

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
            try:
                self._run(pending)
            except Exception as exc:  # a bug here must not take the model thread with it
                for r in pending:
                    if not r[2].done():
                        r[2].set_exception(exc)

    def _run(self, pending) -> None:
        scores = [r for r in pending if isinstance(r[1], str)]
        groups: dict = {}
        for r in pending:
            if not isinstance(r[1], str):
                try:
                    groups.setdefault(r[1].with_seed(0), []).append(r)
                except Exception as exc:  # (an unhashable sampling, say) fails this request only
                    r[2].set_exception(exc)
        if scores:
            self._answer(lambda reqs: self.backend.continuation_logprobs([r[0] for r in reqs], [r[1] for r in reqs]),
                         scores)
        for sampling, reqs in groups.items():
            self._answer(lambda reqs, s=sampling: self.backend.generate([r[0] for r in reqs], s,
                                                                         seeds=[r[1].seed for r in reqs]), reqs)

    @classmethod
    def _answer(cls, run, reqs) -> None:
        try:
            results = run(reqs)
            if len(results) != len(reqs):
                raise RuntimeError(f"the backend answered {len(results)} of {len(reqs)} requests")
        except Exception as exc:
            if len(reqs) > 1:  # find the request at fault: the others still get their answers
                for r in reqs:
                    cls._answer(run, [r])
            else:  # reported to its client as a 500
                reqs[0][2].set_exception(exc)
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


def _host_name(host: str) -> str:
    """An address as a Host header spells it: lower case, IPv6 in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if host.count(":") > 1 and not host.startswith("[") else host


def _has_port(entry: str) -> bool:
    tail = entry.rsplit("]", 1)[-1]
    return ":" in tail and tail.rsplit(":", 1)[1].isdigit()


def accepted_hosts(bound: str, port: int, allowed=()) -> frozenset[str]:
    """The Host header values this server answers: the bound address (every loopback name for a loopback bind)
    and each allowed host, with or without the port; an allowed `name:port` entry only as given."""
    names = {_host_name(bound)} - {""}
    if bound.strip().lower() in LOOPBACK:
        names |= {"localhost", "127.0.0.1", "[::1]"}
    out = {value for name in names for value in (name, f"{name}:{port}")}
    for entry in map(_host_name, allowed):
        out |= {entry} if _has_port(entry) else {entry, f"{entry}:{port}"}
    return frozenset(out - {""})


def bearer_ok(header: str | None, key: str) -> bool:
    """`Authorization: Bearer KEY`, compared in constant time."""
    scheme, _, token = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def fit_context(backend: Backend, cfg: ServeConfig, messages, sampling: Sampling, scoring, explicit: bool) -> Sampling:
    """The prompt within max_prompt_tokens (default: the model's context) and, for a generation, room for the
    completion inside the context: max_tokens the client chose must fit (400), the default is shortened."""
    context = backend.context_length
    limit = min((n for n in (cfg.max_prompt_tokens, context) if n), default=None)
    if limit is None:
        return sampling
    why = "the model's context" if limit == context else "its --max-prompt-tokens"
    try:
        n = backend.prompt_tokens(*scoring, cap=limit) if scoring else backend.prompt_tokens(messages, cap=limit)
    except Exception as exc:  # the model's chat template refused these messages
        raise RequestError(f"the messages cannot be rendered with the model's chat template: {exc}") from None
    if n > limit:
        raise RequestError(f"the prompt is at least {n} tokens, over this server's limit of {limit} tokens ({why}); "
                           "shorten the messages")
    room = context - n if context else sampling.max_new_tokens
    if scoring or sampling.max_new_tokens <= room:
        return sampling
    if explicit or room < 1:
        raise RequestError(f"the prompt ({n} tokens) plus max_tokens ({sampling.max_new_tokens}) is over the "
                           f"model's context of {context} tokens; lower max_tokens or shorten the messages")
    return dataclasses.replace(sampling, max_new_tokens=room)


def make_server(backend: Backend, cfg: ServeConfig) -> BoundedServer:
    model_name = cfg.served_model or backend.model_id.split("@")[0]
    batcher = Batcher(backend, cfg.batch_wait_s, backend.batch_size)

    class Handler(JsonHandler):
        timeout = cfg.socket_timeout_s
        read_deadline_s = cfg.read_deadline_s
        evict_after_s = cfg.evict_after_s

        def handle_expect_100(self):
            return True  # no early "100 Continue": _read_body sends it once the request passed every check

        def _refused(self) -> bool:
            """Host and API-key checks, for every request; True when a refusal was sent."""
            host = (self.headers.get("Host") or "").strip().lower()
            if host not in self.server.accepted_hosts:
                bound = f"{_host_name(self.server.server_address[0])}:{self.server.server_address[1]}"
                what = f"Host {host[:100]!r} is not" if host else "a request without a Host header is"
                self._error(421, f"{what} served here (DNS-rebinding protection); use http://{bound}/v1, or "
                                 "start the server with --allowed-host NAME for a name clients use to reach it",
                            "invalid_request_error", close=True)
                return True
            if cfg.api_key and not bearer_ok(self.headers.get("Authorization"), cfg.api_key):
                self._error(401, "this server needs an API key: send 'Authorization: Bearer KEY' (the openai "
                                 "backend sends $OPENAI_API_KEY) with the key the server was started with",
                            "invalid_request_error", {"WWW-Authenticate": "Bearer"}, close=True)
                return True
            return False

        def _routed(self, method: str) -> bool:
            """True when the path is served for this method; else a 404 or 405 was sent."""
            path = urlsplit(self.path).path.rstrip("/")
            if ROUTES.get(path) == method:
                return True
            if path in ROUTES:
                self._error(405, f"{path} takes {ROUTES[path]}, not {method}", "invalid_request_error",
                            {"Allow": ROUTES[path]}, close=True)
            else:
                self._error(404, f"no route {self.path[:200]}; use POST /v1/chat/completions or GET /v1/models",
                            "not_found", close=method != "GET")
            return False

        def _read_body(self) -> bytes | None:
            """The body of a JSON POST within the size limit, or None once a 415/411/400/413 was sent (the body
            is never read then, and the connection is closed)."""
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
            length = next(iter(lengths)) if len(lengths) == 1 else ""
            if ctype != "application/json":
                self._error(415, f"Content-Type must be application/json (got {ctype[:100] or 'none'}); send the "
                                 "request as JSON", "invalid_request_error", close=True)
            elif self.headers.get("Transfer-Encoding") or not lengths:
                self._error(411, "send a Content-Length header (chunked bodies are not accepted)",
                            "invalid_request_error", close=True)
            elif not (length.isascii() and length.isdigit()):
                self._error(400, "Content-Length must be one non-negative integer", "invalid_request_error",
                            close=True)
            elif int(length) > cfg.max_body_bytes:
                self._error(413, f"the request body ({length} bytes) is over this server's limit of "
                                 f"{cfg.max_body_bytes} bytes; send a shorter request or start the server with a "
                                 "larger --max-body-bytes", "invalid_request_error", close=True)
            else:
                if (self.headers.get("Expect") or "").lower() == "100-continue":
                    self.send_response_only(100)
                    self.end_headers()
                raw = self.rfile.read(int(length))
                if len(raw) < int(length):  # the client closed early: nothing to answer
                    self.close_connection = True
                    return None
                self.conn.finish_read(cfg.socket_timeout_s)
                return raw
            return None

        def do_GET(self):
            self.conn.finish_read(cfg.socket_timeout_s)
            if self._refused() or not self._routed("GET"):
                return
            if urlsplit(self.path).path.rstrip("/") == "/health":
                if batcher.alive:
                    self._send(200, {"status": "ok", "model": model_name})
                else:
                    self._error(503, "the model thread has stopped; restart the server", "server_error")
            else:
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model",
                                                             "owned_by": "assay"}]})

        def do_POST(self):
            if self._refused() or not self._routed("POST"):
                return
            raw = self._read_body()
            if raw is None:
                return
            try:
                self._chat(raw)
            except (ReadDeadline, OSError):
                raise
            except Exception as exc:  # a bug, not the client's fault: still an answer, never silence
                if not self.responded:
                    self._error(500, f"internal error: {type(exc).__name__}: {exc}", "server_error", close=True)

        def _chat(self, raw: bytes) -> None:
            try:
                body = load_body(raw)
                if body.get("model") not in (None, model_name):
                    raise RequestError(f"model {str(body.get('model'))[:100]!r} is not served here; this server "
                                       f"has {model_name!r}")
                messages, sampling = parse_chat_request(body, Sampling.max_new_tokens, cfg.max_tokens_limit)
                scoring = parse_score_request(messages, body) if body.get("continue_final_message") else None
                sampling = fit_context(backend, cfg, messages, sampling, scoring, asks_max_tokens(body))
            except RequestError as exc:
                self._error(400, str(exc), "invalid_request_error")
                return
            if not batcher.alive:
                self._error(503, "the model thread has stopped; restart the server", "server_error")
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

    server = BoundedServer((cfg.host, cfg.port), Handler, cfg.max_concurrent, cfg.evict_after_s)
    server.accepted_hosts = accepted_hosts(cfg.host, server.server_address[1], cfg.allowed_hosts)
    return server
