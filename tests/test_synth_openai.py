"""The openai backend against a real `assay synth serve` process (the tiny model behind an OpenAI-compatible
server, requiring an API key from $ASSAY_SERVE_API_KEY), plus a flaky fake server (in addition) for retries and
bounded concurrency, and the vllm mapping."""
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from assay.synth.backends import make_backend, shared_backend
from assay.synth.backends.openai_backend import BackendHTTPError, chat_payload
from assay.synth.config import BackendConfig, Sampling
from assay.synth.tiny import GGUF_FILE, tiny_model_config, tiny_model_dir

MSGS = [[{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Give one word that rhymes with cat."}]]
KEY = "serve-key-3a9d41"  # the server takes it from $ASSAY_SERVE_API_KEY, the clients send $OPENAI_API_KEY
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, its first stdout line, its stderr log) of `assay synth serve` requiring KEY; the openai
    backend in this module sends it."""
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", ASSAY_SERVE_API_KEY=KEY)
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "synth", "serve",
                                 "--model", tiny_model_dir(),
                                 "--gguf-file", GGUF_FILE, "--port", "0", "--batch-size", "4"],
                                stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    mp = pytest.MonkeyPatch()
    try:
        line = proc.stdout.readline()  # "serving MODEL on http://127.0.0.1:PORT/v1" once the model is loaded
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"server did not start: {line!r} {log.read_text()[-2000:]}"
        mp.setenv("OPENAI_API_KEY", KEY)
        yield match.group(1), line, log
    finally:
        mp.undo()
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(served):
    return served[0]


@pytest.fixture(scope="module")
def local():
    return shared_backend(tiny_model_config(batch_size=4))


def test_openai_backend_against_the_real_server(server, local):
    client = make_backend(BackendConfig(kind="openai", base_url=server, concurrency=2, retries=1, backoff_s=0.05))
    assert client.served_model == GGUF_FILE
    sampling = Sampling(max_new_tokens=8, logprobs=True)
    remote = client.generate(MSGS, sampling)
    direct = local.generate(MSGS, sampling)
    assert [c.text for c in remote] == [c.text for c in direct]  # same model, greedy: same answers
    assert [c.tokens_in for c in remote] == [c.tokens_in for c in direct]
    assert all(c.tokens_out == len(c.token_logprobs) > 0 for c in remote)
    assert client.usage.requests == 2 and client.usage.tokens_out == sum(c.tokens_out for c in remote)

    scores = client.next_token_probs(MSGS[:1], ["0", "1", "2"])
    local_scores = local.next_token_probs(MSGS[:1], ["0", "1", "2"])
    for k in ("0", "1", "2"):  # top-20 logprobs over HTTP = the local forward pass (when in the top 20)
        assert scores[0][k] == pytest.approx(local_scores[0][k], abs=1e-4) or scores[0][k] == 0.0
    client.close()


def test_server_refuses_bad_requests_with_a_clear_error(server):
    with pytest.raises(BackendHTTPError, match="HTTP 400.*not served here"):
        make_backend(BackendConfig(kind="openai", base_url=server, served_model="gpt-9", retries=0)).generate(
            MSGS[:1], Sampling(max_new_tokens=2))
    bad = httpx.post(f"{server}/chat/completions", json={"messages": [{"role": "robot"}]}, headers=AUTH, timeout=30)
    assert bad.status_code == 400 and "role" in bad.json()["error"]["message"]
    assert httpx.post(f"{server}/chat/completions", content=b"{nope", timeout=30,
                      headers={**AUTH, "Content-Type": "application/json"}).status_code == 400
    assert httpx.post(f"{server}/chat/completions", json={"messages": MSGS[0], "stream": True}, headers=AUTH,
                      timeout=30).status_code == 400


def test_the_cli_server_takes_its_api_key_from_the_environment_and_never_shows_it(served, monkeypatch):
    server, first_line, log = served
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        refused = httpx.get(f"{server}/models", headers=headers, timeout=30)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(f"{server}/models", headers=AUTH, timeout=30).status_code == 200
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendHTTPError, match="HTTP 401.*API key"):
        make_backend(BackendConfig(kind="openai", base_url=server, retries=0))
    assert KEY not in first_line and KEY not in log.read_text(errors="replace")


def test_unreachable_server_fails_after_retries():
    cfg = BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", served_model="m", retries=2, backoff_s=0.01,
                        timeout_s=2)
    start = time.perf_counter()
    with pytest.raises(BackendHTTPError, match="after 3 attempts.*is the server running"):
        make_backend(cfg).generate(MSGS[:1], Sampling(max_new_tokens=2))
    assert time.perf_counter() - start < 10


class _Flaky(BaseHTTPRequestHandler):
    """Fails every request's first two attempts with 503; records peak concurrency."""

    attempts: dict = {}
    inflight = peak = 0
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = body["messages"][-1]["content"]
        with self.lock:
            type(self).inflight += 1
            type(self).peak = max(type(self).peak, type(self).inflight)
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
        time.sleep(0.05)
        with self.lock:
            type(self).inflight -= 1
        if n <= 2:
            data, status = b'{"error": {"message": "overloaded"}}', 503
        else:
            data, status = json.dumps({"choices": [{"message": {"content": f"echo {key}"}, "finish_reason": "stop"}],
                                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_retries_with_backoff_and_bounded_concurrency():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cfg = BackendConfig(kind="openai", base_url=f"http://127.0.0.1:{srv.server_port}/v1", served_model="m",
                            concurrency=2, retries=3, backoff_s=0.01)
        prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
        out = make_backend(cfg).generate(prompts, Sampling(max_new_tokens=4))
        assert [c.text for c in out] == [f"echo q{i}" for i in range(6)]
        assert all(v == 3 for v in _Flaky.attempts.values())
        assert _Flaky.peak <= 2
    finally:
        srv.shutdown()


def test_request_mapping():
    body = chat_payload("m", MSGS[0], Sampling(max_new_tokens=5, temperature=0.7, top_p=0.9, stop=("\n",),
                                               logprobs=True), seed=42)
    assert body == {"model": "m", "messages": MSGS[0], "max_tokens": 5, "temperature": 0.7, "top_p": 0.9,
                    "seed": 42, "stop": ["\n"], "logprobs": True}


def test_vllm_argument_mapping_without_vllm():
    from assay.synth.backends import vllm_backend as vb

    cfg = BackendConfig(kind="vllm", model=tiny_model_dir(), gguf_file=GGUF_FILE, tensor_parallel_size=4,
                        max_model_len=8192, enable_prefix_caching=True, dtype="bfloat16")
    kwargs = vb.llm_kwargs(cfg)
    assert kwargs["model"].endswith(GGUF_FILE) and os.path.isfile(kwargs["model"])
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["max_model_len"] == 8192
    assert kwargs["enable_prefix_caching"] is True and kwargs["dtype"] == "bfloat16"
    assert vb.sampling_kwargs(Sampling(max_new_tokens=9, temperature=0.5, stop=("END",), logprobs=True), 7) == {
        "max_tokens": 9, "temperature": 0.5, "top_p": 1.0, "seed": 7, "stop": ["END"], "logprobs": 0}
    assert vb.score_sampling_kwargs()["logprobs"] >= 6  # enough alternatives to see all six score tokens
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install 'assay\\[gpu\\]'"):
            make_backend(cfg)


def test_a_request_the_server_refuses_goes_to_the_ledger_and_the_rest_is_answered(server, tmp_path):
    """In the Beam answer step: one bad request in a batch is a ledger record, not the end of the run."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.util import assert_that, equal_to

    from assay.pipelines.job.steps import StepContext
    from assay.pipelines.synth_jobs.steps import AnswerRequests
    from assay.synth.items import PromptItem

    good = PromptItem("good", "textbook", "t", "h", MSGS[0], seed=1)
    bad = PromptItem("bad", "textbook", "t", "h", [{"role": "robot", "content": "beep"}], seed=2)
    cfg = BackendConfig(kind="openai", base_url=server, retries=0, batch_size=2)
    with beam.Pipeline(runner=FnApiRunner()) as p:
        step = AnswerRequests(cfg, Sampling(max_new_tokens=4), str(tmp_path / "c"), label="t")
        answers, [failed] = step.expand(p | beam.Create([good, bad]), StepContext())
        assert_that(answers | beam.Map(lambda a: (a.item.id, bool(a.completion.text))), equal_to([("good", True)]),
                    label="answers")
        assert_that(failed | beam.Map(lambda r: (r.id, r.reason, "HTTP 400" in r.detail)),
                    equal_to([("bad", "generation_error", True)]), label="ledger")


QUESTION = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


def test_continuation_logprobs_in_process_and_through_the_server(server, local):
    """The answer's log-probability: plausible beats implausible, batching does not change it, and the
    openai backend over `assay synth serve` (vLLM's continue_final_message/prompt_logprobs) gives the same."""
    prompts = [QUESTION, QUESTION, MSGS[1]]
    answers = ["Paris", "Banana", "Hat"]
    scores = local.continuation_logprobs(prompts, answers)
    assert scores[0].logprob > scores[1].logprob + 3  # a 135M model still knows Paris over Banana
    assert "".join(scores[1].tokens) == "Banana" and len(scores[1].token_logprobs) == len(scores[1].tokens) >= 2
    assert scores[0].logprob == pytest.approx(sum(scores[0].token_logprobs))
    assert all(r >= 1 for s in scores for r in s.ranks) and scores[1].greedy is False
    alone = local.continuation_logprobs([QUESTION], ["Banana"])[0]
    assert alone.logprob == pytest.approx(scores[1].logprob, abs=1e-3)  # left padding does not leak in

    client = make_backend(BackendConfig(kind="openai", base_url=server, concurrency=3, retries=1, backoff_s=0.05))
    remote = client.continuation_logprobs(prompts, answers)
    for r, s in zip(remote, scores):
        assert r.tokens == s.tokens and r.ranks == s.ranks
        assert r.logprob == pytest.approx(s.logprob, abs=1e-3)
    assert client.usage.requests == 3
    bad = httpx.post(f"{server}/chat/completions", json={"messages": QUESTION, "continue_final_message": True},
                     headers=AUTH, timeout=30)
    assert bad.status_code == 400 and "final assistant message" in bad.json()["error"]["message"]
    client.close()


def test_suffix_score_reads_the_answer_off_the_rendered_prompt():
    from assay.synth.backends.base import suffix_score
    from assay.synth.backends.openai_backend import continuation_payload, prompt_logprob_entries

    entries = [("<|im_start|>", -1.0, 3), ("assistant", -0.5, 1), ("\n", -0.1, 1), ("Par", -2.0, 2), ("is", -0.2, 1)]
    score = suffix_score(entries, "Paris")
    assert score.tokens == ["Par", "is"] and score.logprob == pytest.approx(-2.2) and score.tokens_in == 3
    assert score.greedy is False
    assert suffix_score(entries[:3] + [("\nParis", -1.5, 1)], "Paris").tokens == ["\nParis"]
    with pytest.raises(ValueError, match="continue_final_message"):
        suffix_score(entries, "Rome")
    with pytest.raises(ValueError, match="empty"):
        suffix_score(entries, "  ")
    body = continuation_payload("m", QUESTION, "Paris")
    assert body["messages"][-1] == {"role": "assistant", "content": "Paris"} and body["continue_final_message"]
    assert body["prompt_logprobs"] == 0 and body["add_generation_prompt"] is False
    wire = [None, {"7": {"logprob": -0.5, "rank": 1, "decoded_token": "Par"}},
            {"9": {"logprob": -0.25, "rank": 4, "decoded_token": "is"}, "3": {"logprob": -0.1, "rank": 1}}]
    assert prompt_logprob_entries(wire) == [("Par", -0.5, 1), ("is", -0.25, 4)]


def test_vllm_continuation_mapping_without_vllm():
    from collections import namedtuple

    from assay.synth.backends import vllm_backend as vb

    conversation, params, chat = vb.continuation_request(QUESTION, "Paris")
    assert conversation[-1] == {"role": "assistant", "content": "Paris"} and conversation[:-1] == QUESTION
    assert params == {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
    assert chat == {"add_generation_prompt": False, "continue_final_message": True}
    Logprob = namedtuple("Logprob", "logprob rank decoded_token")  # the fields vLLM's Logprob carries
    ids = [1, 7, 9]
    per_position = [None, {7: Logprob(-0.5, 1, "Par")}, {9: Logprob(-0.25, 4, "is"), 3: Logprob(-0.1, 1, "x")}]
    assert vb.prompt_logprob_entries(ids, per_position) == [("Par", -0.5, 1), ("is", -0.25, 4)]
