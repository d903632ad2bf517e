"""A chat-completions request body, checked field by field before anything of it reaches the model thread.

Every field the server reads has its type and range checked here (bool is not a number, 1.0 is not an
integer, NaN is not JSON), so a bad request is answered 400 with the field's name and what to send instead,
and never becomes an exception in the thread that owns the model. Fields the server does not know are
ignored, as OpenAI clients send many; fields that would change the answer and that it cannot honour
(tools, response formats, penalties, logit bias) are refused rather than silently dropped.
"""
from __future__ import annotations

import json
import math

from assay.synth.config import Sampling

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 2048  # messages per request: a bound on parsing work, not a model limit
MAX_STOP = 16  # stop strings per request
MAX_STOP_CHARS = 1024  # characters per stop string
MAX_TOP_LOGPROBS = 20  # OpenAI's own maximum for top_logprobs
SEED_RANGE = (-(2 ** 63), 2 ** 63 - 1)  # int64, as OpenAI documents it (and torch's generators accept)
# features this server does not have; a request may name them only with a value that asks for nothing
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "response_format", "logit_bias",
               "frequency_penalty", "presence_penalty")


class RequestError(ValueError):
    """A client mistake: answered with HTTP 400."""


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _no_constant(name: str):
    raise RequestError(f"the request body has {name}, which is not JSON; send finite numbers")


def load_body(raw: bytes) -> dict:
    """The body as a JSON object: UTF-8, strict JSON (no NaN or Infinity), not nested past the parser's depth."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not UTF-8 (byte {exc.start}); send JSON encoded as UTF-8") from None
    try:
        body = json.loads(text or "{}", parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(f"the request body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise RequestError("the request body is nested too deeply; send a flat chat request") from None
    except RequestError:
        raise
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise RequestError(f"the request body has a value this server cannot read: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object with 'messages'")
    return body


def _integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise RequestError(f"'{name}' must be an integer {span} or null (got {_show(value)})")
    return value


def _number(body: dict, name: str, low: float, high: float, default: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    ok = type(value) in (int, float) and math.isfinite(value) and (value > low if low_open else value >= low) \
        and value <= high
    if not ok:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise RequestError(f"'{name}' must be a number in {span} or null (got {_show(value)})")
    return float(value)


def _flag(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is not None and type(value) is not bool:
        raise RequestError(f"'{name}' must be true, false or null (got {_show(value)})")
    return bool(value)


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    if len(messages) > MAX_MESSAGES:
        raise RequestError(f"'messages' has {len(messages)} entries; this server takes at most {MAX_MESSAGES}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RequestError(f"messages[{i}]: each message needs a role (system, user or assistant) and a "
                               "string content")
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(f"messages[{i}].content has an unpaired surrogate (\\ud800-\\udfff); send valid "
                               "Unicode text") from None
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOP or \
            not all(isinstance(s, str) and len(s) <= MAX_STOP_CHARS for s in stop):
        raise RequestError(f"'stop' must be a string or a list of at most {MAX_STOP} strings of at most "
                           f"{MAX_STOP_CHARS} characters (got {_show(body.get('stop'))})")
    return tuple(s for s in stop if s)


def _refuse_unsupported(body: dict) -> None:
    for name in UNSUPPORTED:
        value = body.get(name)
        harmless = value is None or (type(value) in (int, float) and value == 0) or value in ("none", "auto") \
            or value in ([], {}, {"type": "text"})
        if not harmless:
            raise RequestError(f"'{name}' is not supported by this server; leave it out of the request")


def parse_chat_request(body: dict, default_max: int, limit: int) -> tuple[list[dict], Sampling]:
    """OpenAI chat-completions request -> (messages, Sampling); RequestError says what is wrong. max_tokens and
    top_logprobs above the server's limits are lowered to them, as before."""
    messages = _messages(body)
    if _flag(body, "stream"):
        raise RequestError("streaming is not supported by this server; send stream=false")
    if _integer(body, "n", 1) not in (None, 1):
        raise RequestError("only n=1 is supported; send several requests instead")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise RequestError(f"'model' must be a string (got {_show(body['model'])})")
    _refuse_unsupported(body)
    _flag(body, "continue_final_message")
    _flag(body, "add_generation_prompt")
    _integer(body, "prompt_logprobs", 0)  # vLLM's: the scored tokens' log-probabilities come back either way
    new = _integer(body, "max_completion_tokens", 1)
    new = new if new is not None else _integer(body, "max_tokens", 1)
    top = _integer(body, "top_logprobs", 0) or 0
    seed = _integer(body, "seed", *SEED_RANGE) or 0
    sampling = Sampling(max_new_tokens=min(new or default_max, limit),
                        temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
                        top_p=_number(body, "top_p", 0.0, 1.0, 1.0, low_open=True), seed=seed,
                        logprobs=_flag(body, "logprobs"), top_logprobs=min(top, MAX_TOP_LOGPROBS), stop=_stop(body))
    return messages, sampling


def asks_max_tokens(body: dict) -> bool:
    """Whether the client chose the completion length itself (else the server may shorten it to fit)."""
    return body.get("max_completion_tokens") is not None or body.get("max_tokens") is not None


def parse_score_request(messages: list[dict], body: dict) -> tuple[list[dict], str]:
    """A continue_final_message request -> (prompt messages, the assistant answer to score)."""
    if body.get("add_generation_prompt", False):
        raise RequestError("continue_final_message needs add_generation_prompt=false")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise RequestError("continue_final_message needs a final assistant message with the text to score")
    if len(messages) < 2:
        raise RequestError("continue_final_message needs a prompt before the final assistant message")
    return messages[:-1], messages[-1]["content"]
