"""`assay synth serve`: an OpenAI-compatible chat-completions server backed by the transformers backend.

Endpoints: GET /v1/models, GET /health, POST /v1/chat/completions (non-streaming; max_tokens or
max_completion_tokens, temperature, top_p, seed, stop, logprobs, top_logprobs; n = 1). Concurrent requests
are gathered for up to `batch_wait_s` and answered as one batch per distinct set of sampling parameters.
vLLM's chat extensions for scoring are understood too: with `continue_final_message` (and
`add_generation_prompt` false) the final assistant message is scored, not continued, and the response
carries `prompt_logprobs` (null for the tokens before that message, which this server does not score).
Bad requests get HTTP 400 with an OpenAI-style error body saying what to fix.

Hardening (a web page in the user's browser can reach a local server, so every request is checked):
- binds 127.0.0.1 by default;
- the Host header must name the bound address (DNS-rebinding defence): for a loopback bind `localhost`,
  `127.0.0.1` and `[::1]`, with or without the port; for any other bind the bound address and the names in
  `allowed_hosts` (`--allowed-host`). Anything else, or no Host, gets 421;
- POST needs `Content-Type: application/json` (415 otherwise: a cross-site text/plain form post skips the
  CORS preflight) and a Content-Length within `max_body_bytes` (411 missing, 400 invalid, 413 too large,
  answered without reading the body); no CORS headers are ever sent;
- at most `max_concurrent` connections are served at once (one thread each); the next ones get a quick 503
  with Retry-After from a short-lived thread and beyond that are closed unanswered. Each socket read or
  write times out after `socket_timeout_s`, so a stalled client (or an idle keep-alive one) frees its slot;
- with `api_key` (`--api-key` or $ASSAY_SERVE_API_KEY) every request, /health included, needs
  `Authorization: Bearer KEY` (401 otherwise). The openai backend sends $OPENAI_API_KEY (its `api_key_env`).
The key is never logged or echoed.
"""
from __future__ import annotations

import hmac
import json
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from synth.backends.base import Backend
from synth.config import Sampling

API_KEY_ENV = "ASSAY_SERVE_API_KEY"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
DRAIN_LIMIT = 64 * 1024  # a busy (503) connection reads a body up to this size so closing does not reset it


class RequestError(ValueError):
    """A client mistake: answered with HTTP 400."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    served_model: str | None = None  # default: the model file or directory name
    batch_wait_s: float = 0.02
    max_tokens_limit: int = 4096
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted besides the bound address
    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrent: int = 64  # connections served at once; more get 503 + Retry-After
    socket_timeout_s: float = 30.0  # per socket read/write: a stalled client loses its slot
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log or an error message

    def __post_init__(self):
        if self.max_concurrent < 1 or self.max_body_bytes < 1 or self.socket_timeout_s <= 0:
            raise ValueError("max_concurrent and max_body_bytes must be >= 1 and socket_timeout_s > 0")


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


def error_body(status: int, message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": status}}


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


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: one line per request would swamp batch jobs' logs
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None, close: bool = False) -> None:
        """A JSON answer; `close` ends the connection (needed whenever the request body was left unread)."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")  # also sets self.close_connection
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, headers: dict | None = None, close: bool = False) -> None:
        self._send(status, error_body(status, message, kind), headers, close)


class BusyHandler(_QuietHandler):
    """What a connection gets while every slot is taken: one quick 503 with Retry-After, then close."""

    timeout = 2.0

    def _busy(self) -> None:
        length = (self.headers.get("Content-Length") or "").strip()
        if length.isascii() and length.isdigit() and int(length) <= DRAIN_LIMIT:
            self.rfile.read(int(length))  # so closing does not reset the connection before the client reads
        self._error(503, f"the server is busy: all {self.server.max_concurrent} request slots are in use; retry "
                         "after the Retry-After seconds (or start it with a larger --max-concurrent)",
                    "server_busy", {"Retry-After": "1"}, close=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _busy


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but at most `max_concurrent` serving at once; the next `max_concurrent`
    connections are answered 503 by BusyHandler threads, and any beyond those are closed unanswered."""

    def __init__(self, address, handler, max_concurrent: int):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.max_concurrent = max_concurrent
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.spare = threading.BoundedSemaphore(max_concurrent)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        for sem, handler in ((self.slots, self.RequestHandlerClass), (self.spare, BusyHandler)):
            if sem.acquire(blocking=False):
                try:
                    threading.Thread(target=self._serve, args=(request, client_address, handler, sem),
                                     daemon=True).start()
                    return
                except RuntimeError:  # no thread to be had: drop the connection
                    sem.release()
                    break
        self.shutdown_request(request)

    def _serve(self, request, client_address, handler, sem) -> None:
        try:
            try:
                handler(request, client_address, self)
            finally:
                sem.release()  # before the socket closes: a client that saw the close finds the slot free
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def make_server(backend: Backend, cfg: ServeConfig) -> BoundedServer:
    model_name = cfg.served_model or backend.model_id.split("@")[0]
    batcher = Batcher(backend, cfg.batch_wait_s, backend.batch_size)

    class Handler(_QuietHandler):
        timeout = cfg.socket_timeout_s

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
                return self.rfile.read(int(length))
            return None

        def do_GET(self):
            if self._refused():
                return
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model",
                                                             "owned_by": "assay"}]})
            elif self.path.rstrip("/") == "/health":
                self._send(200, {"status": "ok", "model": model_name})
            else:
                self._error(404, f"no route {self.path}; use /v1/chat/completions or /v1/models", "not_found")

        def do_POST(self):
            if self._refused():
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}; POST /v1/chat/completions", "not_found", close=True)
                return
            raw = self._read_body()
            if raw is None:
                return
            try:
                body = json.loads(raw or b"{}")
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

    server = BoundedServer((cfg.host, cfg.port), Handler, cfg.max_concurrent)
    server.accepted_hosts = accepted_hosts(cfg.host, server.server_address[1], cfg.allowed_hosts)
    return server
