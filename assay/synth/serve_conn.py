"""Connections of `assay synth serve`: bounded, timed, and always answered in JSON.

- a thread per connection, at most `max_concurrent` serving at once; the next `max_concurrent` get a quick
  503 with Retry-After from a short-lived thread, and any beyond those are closed unanswered;
- each request (request line, headers and body) must arrive within `read_deadline_s` in total, not per read:
  a client trickling a byte at a time cannot hold its slot past the deadline (408). A keep-alive connection
  whose next request has not begun by then is closed silently, and a single read or write stalled for
  `socket_timeout_s` drops the connection;
- when every slot is taken, a newcomer takes the slot of the connection that has been reading its request
  the longest, if that is over `evict_after_s` (a slow sender or an idle keep-alive one; 408 to it when it
  had sent part of a request). Slots whose request is being answered are never taken, so a few slow clients
  cannot lock out one that sends its request promptly;
- every malformed request gets a 4xx JSON error, never HTML or silence: bad request lines, HTTP/0.9 or 2,
  unknown methods (405), over-long lines and too many headers (414/431), repeated Host headers.
"""
from __future__ import annotations

import io
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DRAIN_LIMIT = 64 * 1024  # a busy (503) connection reads a body up to this size so closing does not reset it
MAX_LINE = 65536  # request line and header line length, as http.server bounds them (its readline(65537))


class ReadDeadline(Exception):
    """The request did not arrive within the read deadline, or its connection was evicted for a newcomer."""


class Connection:
    """An accepted socket and where its handler stands: reading a request (since when, until when) or not."""

    def __init__(self, sock: socket.socket, lock: threading.Lock, evictable: bool = True):
        self.sock, self.lock, self.evictable = sock, lock, evictable
        self.reading_since: float | None = time.monotonic()  # a new connection is reading its first request
        self.deadline: float | None = None
        self.received = 0  # bytes of the current request
        self.evicted = False  # its slot was handed to a newcomer: it must not release it

    def begin_read(self, deadline_s: float) -> None:
        with self.lock:
            if self.reading_since is None:
                self.reading_since = time.monotonic()
            self.deadline, self.received = self.reading_since + deadline_s, 0

    def finish_read(self, socket_timeout_s: float) -> None:
        """The request is in: no deadline, no eviction from here on (raises ReadDeadline if it came too late)."""
        with self.lock:
            if self.evicted:
                raise ReadDeadline
            self.reading_since = self.deadline = None
        self.sock.settimeout(socket_timeout_s)


class DeadlineReader(io.RawIOBase):
    """The socket's reads, each bounded by what is left of the connection's read deadline."""

    def __init__(self, conn: Connection, per_read_s: float):
        self.conn, self.per_read_s = conn, per_read_s

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        conn, wait = self.conn, self.per_read_s
        if conn.deadline is not None:
            left = conn.deadline - time.monotonic()
            if conn.evicted or left <= 0:
                raise ReadDeadline
            wait = min(wait, left)
        conn.sock.settimeout(wait)
        try:
            n = conn.sock.recv_into(buf)
        except TimeoutError:
            if conn.deadline is not None and time.monotonic() >= conn.deadline:
                raise ReadDeadline from None
            raise
        except OSError:
            if conn.evicted:
                raise ReadDeadline from None
            raise
        if n == 0 and conn.evicted:
            raise ReadDeadline
        conn.received += n
        return n


def error_body(status: int, message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": status}}


class JsonHandler(BaseHTTPRequestHandler):
    """Quiet, JSON-only HTTP/1.1 handling with the connection's read deadline."""

    protocol_version = "HTTP/1.1"
    timeout = 30.0  # per socket read or write
    read_deadline_s = 10.0
    evict_after_s = 1.0

    def log_message(self, fmt, *args):  # quiet: one line per request would swamp batch jobs' logs
        pass

    def setup(self) -> None:
        super().setup()
        self.conn = self.server.connection(self.request)
        self.rfile.close()  # the buffered socket file: ours reads under the deadline instead
        self.rfile = io.BufferedReader(DeadlineReader(self.conn, self.timeout))

    def handle_one_request(self) -> None:
        self.responded, self.command, self.requestline = False, None, ""
        self.request_version = self.protocol_version
        self.conn.begin_read(self.read_deadline_s)
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if self.raw_requestline in (b"\r\n", b"\n"):  # one empty line before a request is allowed (RFC 9112)
                self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if len(self.raw_requestline) > MAX_LINE:
                self.send_error(414, f"the request line is over {MAX_LINE} bytes")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                if not self.responded:
                    self.send_error(400, "the request line is empty; send 'METHOD /path HTTP/1.1'")
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501)
                return
            method()
            self.wfile.flush()
        except ReadDeadline:
            self.close_connection = True
            if self.conn.received and not self.responded:
                self._late()
        except (TimeoutError, ConnectionError):  # a stalled or vanished client: drop the connection
            self.close_connection = True

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not served; send 'GET /path HTTP/1.1' with a Host header")
            return False
        if len(self.headers.get_all("Host") or []) > 1:
            self.send_error(400, "the request has more than one Host header; send exactly one")
            return False
        return True

    def _late(self) -> None:
        if self.conn.evicted:
            message = (f"this connection spent over {self.evict_after_s:g} s sending its request while every slot "
                       "was taken, and was closed to serve another; send each request in one go")
        else:
            message = (f"the request (line, headers and body) did not arrive within {self.read_deadline_s:g} s; "
                       "send it in one go (or start the server with a larger --read-deadline)")
        try:
            self.conn.sock.settimeout(2.0)
            self._error(408, message, "request_timeout", close=True)
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None) -> None:
        """Every protocol-level refusal of http.server, as a 4xx JSON error that closes the connection."""
        headers = {}
        if code == 501:  # an unknown method
            code, message, headers = 405, f"method {self.command!r} is not served here; use GET or POST", \
                {"Allow": "GET, POST"}
        elif code == 505:
            message = "only HTTP/1.0 and HTTP/1.1 are served; send 'METHOD /path HTTP/1.1'"
            code = 400
        elif code == 431:
            message = f"{message or 'header fields too large'}: {explain or ''}; send fewer, shorter headers"
        if self.request_version in ("HTTP/0.9", ""):
            self.request_version = self.protocol_version  # so the status line and headers are written
        text = message or self.responses.get(code, ("bad request",))[0]
        self.close_connection = True
        try:
            self._error(code, text, "invalid_request_error", headers, close=True)
        except OSError:
            pass

    def _send(self, status: int, payload: dict, headers: dict | None = None, close: bool = False) -> None:
        """A JSON answer; `close` ends the connection (needed whenever the request body was left unread)."""
        data = json.dumps(payload).encode()
        self.responded = True
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


class BusyHandler(JsonHandler):
    """What a connection gets while every slot is taken: one quick 503 with Retry-After, then close."""

    timeout = 2.0
    read_deadline_s = 2.0

    def _busy(self) -> None:
        length = (self.headers.get("Content-Length") or "").strip()
        if length.isascii() and length.isdigit() and int(length) <= DRAIN_LIMIT:
            self.rfile.read(int(length))  # so closing does not reset the connection before the client reads
        self._error(503, f"the server is busy: all {self.server.max_concurrent} request slots are in use; retry "
                         "after the Retry-After seconds (or start it with a larger --max-concurrent)",
                    "server_busy", {"Retry-After": "1"}, close=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _busy


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but at most `max_concurrent` serving at once (see the module docstring)."""

    def __init__(self, address, handler, max_concurrent: int, evict_after_s: float = 1.0):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.max_concurrent, self.evict_after_s = max_concurrent, evict_after_s
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.spare = threading.BoundedSemaphore(max_concurrent)
        self.lock = threading.Lock()
        self.connections: dict[socket.socket, Connection] = {}
        super().__init__(address, handler)

    def connection(self, request) -> Connection:
        with self.lock:
            return self.connections[request]

    def process_request(self, request, client_address):
        conn = Connection(request, self.lock)
        if self.slots.acquire(blocking=False) or self._evict_one():
            handler, sem = self.RequestHandlerClass, self.slots
        elif self.spare.acquire(blocking=False):
            handler, sem, conn.evictable = BusyHandler, self.spare, False
        else:
            self.shutdown_request(request)
            return
        with self.lock:
            self.connections[request] = conn
        try:
            threading.Thread(target=self._serve, args=(request, client_address, handler, sem, conn),
                             daemon=True).start()
        except RuntimeError:  # no thread to be had: drop the connection
            self._release(request, sem, conn)
            self.shutdown_request(request)

    def _evict_one(self) -> bool:
        """Close the connection reading its request the longest (over evict_after_s); its slot is then ours."""
        now = time.monotonic()
        with self.lock:
            slow = [c for c in self.connections.values() if c.evictable and not c.evicted
                    and c.reading_since is not None and now - c.reading_since >= self.evict_after_s]
            if not slow:
                return False
            victim = min(slow, key=lambda c: c.reading_since)
            victim.evicted = True
        try:
            victim.sock.shutdown(socket.SHUT_RD)  # wakes its handler's read, which then answers 408
        except OSError:
            pass
        return True

    def _release(self, request, sem, conn: Connection) -> None:
        with self.lock:
            self.connections.pop(request, None)
            handed_off = conn.evicted
        if not handed_off:
            sem.release()

    def _serve(self, request, client_address, handler, sem, conn: Connection) -> None:
        try:
            try:
                handler(request, client_address, self)
            finally:
                self._release(request, sem, conn)  # before the socket closes: a client that saw the close finds
                #                                     the slot free
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a client that vanished mid-answer is not news
            super().handle_error(request, client_address)
