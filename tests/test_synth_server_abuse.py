"""`assay synth serve` under abuse, with real HTTP to the real server in this process and the tiny model behind
it: every malformed request gets a 4xx JSON error, request fields are checked before the model thread, the
model thread survives a request that breaks the backend, seeds stay per request, prompts are capped by the
model's context, and a bounded load test (slow clients holding every slot plus a stream of malformed
requests, on 127.0.0.1 only) still serves a well-formed client within a bound."""
import http.client
import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from serving import serving

from assay.synth.backends import shared_backend
from assay.synth.config import Sampling
from assay.synth.server import Batcher, RequestError, ServeConfig, fit_context, parse_chat_request
from assay.synth.tiny import tiny_model_config

MSGS = [{"role": "user", "content": "Say hi."}]
CHAT = {"messages": MSGS, "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def backend():
    return shared_backend(tiny_model_config(batch_size=4))  # the same loaded model as the other synth tests


def raw(server, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes on a fresh connection; what came back by the time the server closed it."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def post(body, extra: bytes = b"") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(data) + data)


def chat(server, body: dict, timeout: float = 60) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def status_and_error(reply: bytes) -> tuple[int, str]:
    head, _, payload = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"\r\nContent-Type: application/json" in head, head
    return status, json.loads(payload)["error"]["message"]


def with_messages(**kw) -> dict:
    return {"messages": MSGS, **kw}


HEAD = b"Host: 127.0.0.1\r\nConnection: close\r\n"
MALFORMED = {  # what went wrong -> the bytes a client sent
    "no HTTP version": b"GARBAGE\r\n\r\n",
    "empty request lines": b"\r\n\r\n",
    "HTTP/0.9": b"GET /health\r\n\r\n",
    "HTTP/2.0": b"GET /health HTTP/2.0\r\n" + HEAD + b"\r\n",
    "bad version": b"GET /health HTTP/1.x\r\n" + HEAD + b"\r\n",
    "unknown method": b"BREW /health HTTP/1.1\r\n" + HEAD + b"\r\n",
    "DELETE": b"DELETE /v1/chat/completions HTTP/1.1\r\n" + HEAD + b"\r\n",
    "GET on a POST route": b"GET /v1/chat/completions HTTP/1.1\r\n" + HEAD + b"\r\n",
    "unknown path": b"GET /admin HTTP/1.1\r\n" + HEAD + b"\r\n",
    "unknown POST path": post(CHAT).replace(b"/v1/chat/completions", b"/v1/completions"),
    "request line too long": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    "too many headers": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-A: 1\r\n" * 120 + b"\r\n",
    "header line too long": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-A: " + b"a" * 70_000 + b"\r\n\r\n",
    "two Host headers": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
    "two Content-Lengths": post(CHAT, b"Content-Length: 3\r\n"),
    "not JSON": post(b"{nope"),
    "not UTF-8": post(b'{"messages": "\xff\xfe"}'),
    "nested too deeply": post(b"[" * 100_000),
    "NaN": post(b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}'),
    "integer too long to read": post(b'{"seed": ' + b"9" * 5000 + b"}"),
    "a JSON array": post(b"[1, 2]"),
    "no messages": post({"max_tokens": 2}),
    "a message without content": post({"messages": [{"role": "user"}]}),
    "an unpaired surrogate": post(b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),
    "too many messages": post({"messages": MSGS * 3000}),
    "stop [[1]]": post(with_messages(stop=[[1]])),
    "stop 5": post(with_messages(stop=5)),
    "seed 2**70": post(with_messages(seed=2 ** 70)),
    "seed true": post(with_messages(seed=True)),
    "seed '1'": post(with_messages(seed="1")),
    "max_tokens 0": post(with_messages(max_tokens=0)),
    "max_tokens 1.5": post(with_messages(max_tokens=1.5)),
    "temperature -1": post(with_messages(temperature=-1)),
    "temperature 'hot'": post(with_messages(temperature="hot")),
    "top_p 0": post(with_messages(top_p=0)),
    "n 2": post(with_messages(n=2)),
    "n true": post(with_messages(n=True)),
    "stream 'yes'": post(with_messages(stream="yes")),
    "stream true": post(with_messages(stream=True)),
    "logprobs 'yes'": post(with_messages(logprobs="yes")),
    "top_logprobs -1": post(with_messages(top_logprobs=-1)),
    "model 7": post(with_messages(model=7)),
    "tools": post(with_messages(tools=[{"type": "function", "function": {"name": "f"}}])),
}


def test_every_malformed_request_gets_a_4xx_json_error_and_the_server_goes_on(backend):
    with serving(backend) as server:
        for what, data in MALFORMED.items():
            status, message = status_and_error(raw(server, data))
            assert 400 <= status < 500 and message, (what, status, message)
        status, body = chat(server, CHAT)
        assert status == 200 and body["usage"]["completion_tokens"] >= 1


def test_request_fields_are_checked_by_type_and_range():
    ok = {"messages": MSGS, "seed": -2 ** 63, "temperature": 2, "top_p": 1, "stop": ["a", ""], "max_tokens": 1,
          "n": 1, "stream": False, "logprobs": None, "frequency_penalty": 0.0, "tool_choice": "none", "user": "u",
          "response_format": {"type": "text"}, "prompt_logprobs": 0}
    messages, sampling = parse_chat_request(ok, 256, 100)
    assert (sampling.seed, sampling.temperature, sampling.top_p, sampling.stop) == (-2 ** 63, 2.0, 1.0, ("a",))
    assert parse_chat_request({**ok, "seed": 2 ** 63 - 1}, 256, 100)[1].seed == 2 ** 63 - 1
    for field, bad in (("seed", 2 ** 63), ("seed", 1.0), ("max_tokens", True), ("max_completion_tokens", "8"),
                       ("temperature", 2.5), ("temperature", True), ("top_p", -0.1), ("top_p", float("nan")),
                       ("stop", ["x"] * 17), ("stop", "x" * 1025), ("stop", {"a": 1}), ("top_logprobs", 1.5),
                       ("n", 0), ("continue_final_message", "yes"), ("presence_penalty", 1),
                       ("logit_bias", {"1": 5}), ("messages", [{"role": "tool", "content": "x"}]),
                       ("messages", ["hi"]), ("messages", [])):
        with pytest.raises(RequestError, match=field.split("_")[0] if field != "messages" else "message"):
            parse_chat_request({**ok, field: bad}, 256, 100)


def test_the_model_thread_survives_requests_that_break_the_backend(backend):
    """Requests that slipped past validation (an unhashable stop, a seed torch cannot take) fail alone."""
    batcher = Batcher(backend, wait_s=0.3, batch_size=8)
    good = Sampling(max_new_tokens=3, temperature=1.0)
    alone = [backend.generate([MSGS], good, seeds=[s])[0].text for s in (1, 2)]
    futures = [batcher.submit(MSGS, good.with_seed(1)), batcher.submit(MSGS, Sampling(stop=([1],))),
               batcher.submit(MSGS, good.with_seed(2 ** 70)), batcher.submit(MSGS, good.with_seed(2))]
    assert futures[0].result(60).text == alone[0] and futures[3].result(60).text == alone[1]
    for fut in futures[1:3]:
        assert isinstance(fut.exception(60), Exception)
    assert batcher.alive and batcher.submit(MSGS, good.with_seed(1)).result(60).text == alone[0]


def test_each_seed_drives_only_its_own_request(backend):
    with serving(backend, batch_wait_s=0.3) as server:
        sampled = {"messages": MSGS, "max_tokens": 6, "temperature": 1.0, "seed": 7}
        alone = chat(server, sampled)[1]["choices"][0]["message"]["content"]
        others = [{"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6, "temperature": 1.0,
                   "seed": seed} for seed in (2 ** 63 - 1, -2 ** 63, 0)]
        with ThreadPoolExecutor(4) as pool:  # gathered into one batch (same sampling, 0.3 s window)
            answers = list(pool.map(lambda body: chat(server, body), [sampled, *others]))
        assert all(status == 200 for status, _ in answers), answers
        assert answers[0][1]["choices"][0]["message"]["content"] == alone


def test_prompts_are_capped_by_the_context_or_the_configured_limit(backend):
    with serving(backend, max_prompt_tokens=64, max_tokens_limit=10_000) as server:
        status, body = chat(server, {"messages": [{"role": "user", "content": "word " * 100}], "max_tokens": 2})
        assert status == 400 and "limit of 64 tokens" in body["error"]["message"]
        assert chat(server, CHAT)[0] == 200
    with serving(backend, max_tokens_limit=10_000) as server:
        status, body = chat(server, {"messages": [{"role": "user", "content": "word " * 9000}]})
        assert status == 400 and "limit of 8192 tokens (the model's context)" in body["error"]["message"]
        started = time.monotonic()  # 4 MB: refused on its length alone, without tokenizing it (seconds)
        status, body = chat(server, {"messages": [{"role": "user", "content": "word " * 800_000}]})
        assert status == 400 and time.monotonic() - started < 2
        status, body = chat(server, {"messages": MSGS, "max_tokens": 8190})
        assert status == 400 and "lower max_tokens" in body["error"]["message"]
    cfg = ServeConfig(port=0)
    long = [{"role": "user", "content": "word " * 8000}]
    fitted = fit_context(backend, cfg, long, Sampling(max_new_tokens=256), None, explicit=False)
    assert fitted.max_new_tokens == 8192 - backend.prompt_tokens(long) < 256  # the default makes room


def test_a_request_trickling_in_is_cut_at_the_read_deadline(backend):
    with serving(backend, read_deadline_s=0.6) as server:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            reply = b""
            for _ in range(100):  # a byte every 0.05 s: each read is quick, the request never ends
                if select.select([sock], [], [], 0.05)[0]:
                    break
                sock.sendall(b"X")
            while chunk := sock.recv(65536):  # the reply may come in several reads; the server then closes
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408 ") and b"--read-deadline" in reply
        assert 0.5 < time.monotonic() - started < 3


def test_with_every_slot_held_by_a_slow_reader_a_newcomer_takes_the_oldest_slot(backend):
    with serving(backend, max_concurrent=1, evict_after_s=0.2) as server:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # holds the only slot
            assert raw(server, b"GET /health HTTP/1.1\r\n" + HEAD + b"\r\n").startswith(b"HTTP/1.1 503 ")  # young
            time.sleep(0.3)
            assert raw(server, b"GET /health HTTP/1.1\r\n" + HEAD + b"\r\n").startswith(b"HTTP/1.1 200 ")
            reply = slow.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"closed to serve another" in reply


def _slowloris(port: int, stop: threading.Event, seen: dict) -> None:
    """Hold a connection by trickling header bytes; reconnect when dropped. At most 200 connections."""
    for _ in range(200):
        if stop.is_set():
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                while not stop.is_set():
                    if select.select([sock], [], [], 0.05)[0]:
                        first = sock.recv(64)
                        seen[first[:12]] = seen.get(first[:12], 0) + 1
                        break
                    sock.sendall(b"a")
        except OSError:
            seen["oserror"] = seen.get("oserror", 0) + 1


def _malformed(port: int, stop: threading.Event, statuses: list) -> None:
    """Send the malformed requests round and round (at most 400); record each answer's status."""
    requests = list(MALFORMED.values())
    for i in range(400):
        if stop.is_set():
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(requests[i % len(requests)])
                reply = sock.recv(65536)
            statuses.append(int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else reply[:40])
        except OSError as exc:  # the server closed before reading all we sent (a 413-style early answer)
            statuses.append(type(exc).__name__)
        time.sleep(0.01)


def test_slow_and_malformed_clients_cannot_lock_out_a_prompt_client(backend):
    """As many slow clients as slots, reconnecting when dropped, plus a stream of malformed requests: a client
    that sends its request promptly (retrying after a 503) is served within a bound."""
    slots, stop, seen, statuses = 3, threading.Event(), {}, []
    with serving(backend, max_concurrent=slots, evict_after_s=0.3, read_deadline_s=2.0) as server:
        hostile = [threading.Thread(target=_slowloris, args=(server.server_port, stop, seen), daemon=True)
                   for _ in range(slots)]
        hostile.append(threading.Thread(target=_malformed, args=(server.server_port, stop, statuses), daemon=True))
        for t in hostile:
            t.start()
        time.sleep(0.5)  # every slot is held by a slow client by now
        waits = []
        try:
            for _ in range(6):
                started = time.monotonic()
                for _attempt in range(100):  # bounded: at most 100 tries 0.05 s apart
                    status, body = chat(server, CHAT, timeout=30)
                    if status != 503:
                        break
                    time.sleep(0.05)
                assert status == 200, body
                waits.append(time.monotonic() - started)
        finally:
            stop.set()
            for t in hostile:
                t.join(timeout=15)
        assert not any(t.is_alive() for t in hostile)
    assert max(waits) < 5, waits
    assert seen.get(b"HTTP/1.1 408", 0) >= slots, seen  # slow clients were cut off (and told why)
    assert statuses and all(s == 503 or (isinstance(s, int) and 400 <= s < 500) for s in statuses), statuses
    print(f"prompt client waited {max(waits):.2f} s at most over {len(waits)} requests; slow clients: {seen}; "
          f"{len(statuses)} malformed requests answered")
