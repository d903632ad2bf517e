"""`assay synth serve` hardening, with real HTTP requests (http.client and raw sockets) to the real server in
this process, the tiny model behind it: Host checks (DNS rebinding), JSON-only POSTs, the body-size cap,
bounded concurrency with a socket timeout, and the API key. The CLI's $ASSAY_SERVE_API_KEY path is tested
against the server subprocess in test_synth_openai.py."""
import http.client
import json
import socket

import pytest
from serving import serving

from assay.synth.backends import make_backend, shared_backend
from assay.synth.config import BackendConfig, Sampling
from assay.synth.server import ServeConfig, accepted_hosts
from assay.synth.tiny import tiny_model_config

KEY = "test-key-5f0c1e"
CHAT = json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2, "temperature": 0}).encode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def backend():
    return shared_backend(tiny_model_config(batch_size=4))  # the same loaded model as test_synth_openai's


def call(server, method, path, body=None, headers=None, host="127.0.0.1"):
    """One request with exactly these headers (host None: no Host header) -> (status, headers, JSON body)."""
    conn = http.client.HTTPConnection(server.server_address[0], server.server_port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"null")
    finally:
        conn.close()


def raw(server, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection((server.server_address[0], server.server_port), timeout=30) as sock:
        sock.sendall(data)
        return _read_to_close(sock)


def _read_to_close(sock) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_host_header_must_name_the_bound_address(backend):
    with serving(backend) as server:
        port = server.server_port
        for good in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert call(server, "GET", "/v1/models", host=good)[0] == 200, good
        for bad in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", f"localhost:{port + 1}",
                    f"localhost.:{port}", "", None):
            status, _, body = call(server, "GET", "/v1/models", host=bad)
            assert status == 421, bad
            assert "DNS-rebinding" in body["error"]["message"] and "--allowed-host" in body["error"]["message"]
        status, _, body = call(server, "POST", "/v1/chat/completions", CHAT, JSON, host=f"evil.example:{port}")
        assert status == 421 and body["error"]["code"] == 421
        status, _, body = call(server, "POST", "/v1/chat/completions", CHAT, JSON, host=f"localhost:{port}")
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"


def test_another_bind_answers_only_its_address_and_the_allowed_hosts(backend):
    with serving(backend, host="127.0.0.2", allowed_hosts=["gpu-box.lan", "proxy.example:443"]) as server:
        port = server.server_port
        for good in ("127.0.0.2", f"127.0.0.2:{port}", "gpu-box.lan", f"GPU-box.lan:{port}", "proxy.example:443"):
            assert call(server, "GET", "/health", host=good)[0] == 200, good
        for bad in ("localhost", f"127.0.0.1:{port}", "proxy.example", f"proxy.example:{port}", "other.lan"):
            assert call(server, "GET", "/health", host=bad)[0] == 421, bad
    wildcard = accepted_hosts("0.0.0.0", 8000, ["box"])
    assert wildcard == {"0.0.0.0", "0.0.0.0:8000", "box", "box:8000"}
    ipv6 = accepted_hosts("::1", 9, ["fe80::1", "[fe80::2]:7"])
    assert ipv6 >= {"[::1]:9", "localhost", "127.0.0.1:9", "[fe80::1]:9", "[fe80::2]:7"} and "[fe80::2]:9" not in ipv6


def test_post_needs_a_json_content_type(backend):
    with serving(backend) as server:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"Content-Type": ctype} if ctype else {}
            status, _, body = call(server, "POST", "/v1/chat/completions", CHAT, headers)
            assert status == 415, ctype
            assert "Content-Type must be application/json" in body["error"]["message"]
        status, _, body = call(server, "POST", "/v1/chat/completions", CHAT,
                               {"Content-Type": "Application/JSON; charset=utf-8"})
        assert status == 200 and body["usage"]["completion_tokens"] >= 1


def test_the_body_size_is_capped_before_reading(backend):
    with serving(backend, max_body_bytes=len(CHAT) + 10) as server:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        # a 10 GB body announced and never sent: the answer (and the close) comes without waiting for it, and
        # without a "100 Continue" inviting the client to send it
        reply = raw(server, head + b"Expect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply
        assert b"--max-body-bytes" in reply and b"Connection: close" in reply
        assert call(server, "POST", "/v1/chat/completions", CHAT + b" " * 10, JSON)[0] == 200  # at the cap
        assert call(server, "POST", "/v1/chat/completions", CHAT + b" " * 11, JSON)[0] == 413
        assert raw(server, head + b"\r\n").startswith(b"HTTP/1.1 411 ")  # no Content-Length
        assert raw(server, head + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").startswith(b"HTTP/1.1 411 ")
        for bad in (b"-1", b"12abc", b"\xb2"):
            assert raw(server, head + b"Content-Length: " + bad + b"\r\n\r\n").startswith(b"HTTP/1.1 400 "), bad
        reply = raw(server, head + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: "
                    + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT)
        assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")  # within the cap: invited


def closing(server, method="GET", path="/health", body=b"") -> tuple[bytes, bytes, dict | None]:
    """(status line, header lines, JSON body) of a request read until the server closes the connection: by then
    it has freed the slot (it releases before closing), so the next request does not race with this one's end."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    status_line, _, rest = raw(server, head.encode() + body).partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    return status_line, headers, json.loads(payload or b"null")


def test_connections_beyond_max_concurrent_get_a_quick_503(backend):
    with serving(backend, max_concurrent=1, evict_after_s=60) as server:  # the held connection is never evicted
        with socket.create_connection((server.server_address[0], server.server_port), timeout=30) as held:
            held.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers unfinished: holds the slot
            status, headers, body = closing(server)  # (connections are accepted in the order they connect)
            assert status == b"HTTP/1.1 503 Service Unavailable" and b"\r\nRetry-After: 1" in headers
            assert b"\r\nConnection: close" in headers
            assert body["error"]["type"] == "server_busy" and "--max-concurrent" in body["error"]["message"]
            status, _, body = closing(server, "POST", "/v1/chat/completions", CHAT)
            assert status == b"HTTP/1.1 503 Service Unavailable" and body["error"]["code"] == 503
            held.sendall(b"Connection: close\r\n\r\n")
            assert _read_to_close(held).startswith(b"HTTP/1.1 200 ")
        assert closing(server)[0] == b"HTTP/1.1 200 OK"  # the slot is free again once the connection closed
        assert closing(server, "POST", "/v1/chat/completions", CHAT)[0] == b"HTTP/1.1 200 OK"


def test_a_stalled_connection_is_dropped_and_frees_its_slot(backend):
    with serving(backend, max_concurrent=1, socket_timeout_s=0.5) as server:
        with socket.create_connection((server.server_address[0], server.server_port), timeout=30) as stalled:
            stalled.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a slowloris client
            assert _read_to_close(stalled) == b""  # dropped after socket_timeout_s without an answer
        assert closing(server)[0] == b"HTTP/1.1 200 OK"


def test_an_api_key_is_required_when_set(backend, monkeypatch):
    cfg = ServeConfig(port=0, api_key=KEY)
    assert KEY not in repr(cfg)
    with serving(backend, api_key=KEY) as server:
        for auth in (None, "Bearer wrong-key", f"Bearer {KEY}x", f"Basic {KEY}", KEY, "Bearer"):
            for method, path, body in (("GET", "/v1/models", None), ("GET", "/health", None),
                                       ("POST", "/v1/chat/completions", CHAT), ("GET", "/nowhere", None)):
                sent = {**JSON, "Authorization": auth} if auth else JSON
                status, headers, answer = call(server, method, path, body, sent)
                assert status == 401 and headers["WWW-Authenticate"] == "Bearer", (auth, path)
                assert KEY not in json.dumps(answer)
        assert call(server, "GET", "/health", headers={"Authorization": f"bearer {KEY}"})[0] == 200
        # the openai backend with the key in its api_key_env: JSON POSTs with the bearer token pass every check
        monkeypatch.setenv("ASSAY_TEST_SERVE_KEY", KEY)
        client = make_backend(BackendConfig(kind="openai", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                                            api_key_env="ASSAY_TEST_SERVE_KEY", retries=0))
        out = client.generate([[{"role": "user", "content": "Say hi."}]], Sampling(max_new_tokens=2))
        assert out[0].tokens_out >= 1
        client.close()
