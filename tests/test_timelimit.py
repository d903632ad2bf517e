"""The per-call time limit: stops runaway Python code on any thread, and never leaks a raise into later code."""
import threading
import time

import pytest

from assay.curation import timelimit
from assay.curation.document import Document, Rejection
from assay.curation.extract import ExtractConfig, ExtractText
from assay.curation.timelimit import call_with_time_limit


def spin():
    while True:
        pass


def swallow_everything():
    """Library code that catches what it should not: the limit raises again until the call unwinds."""
    for _ in range(3):
        try:
            spin()
        except BaseException:  # noqa: BLE001 - deliberately hostile
            pass
    return "escaped"


def test_a_call_past_its_limit_raises_timeout_error():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="0.2 s"):
        call_with_time_limit(0.2, spin)
    assert 0.15 < time.monotonic() - start < 5


def test_code_that_swallows_the_raise_is_raised_at_again():
    with pytest.raises(TimeoutError):
        call_with_time_limit(0.1, lambda: (swallow_everything(), spin()))


def test_results_pass_through_and_no_raise_lands_after_the_call():
    assert call_with_time_limit(5, lambda a, b: a + b, 2, 3) == 5
    assert call_with_time_limit(None, lambda: "no limit") == "no limit"
    finished = 0
    for _ in range(300):  # calls that end right around their deadline
        try:
            call_with_time_limit(0.001, time.sleep, 0.001)
        except TimeoutError:
            pass
        for _ in range(2000):  # plenty of bytecodes where a stray TimeLimitExceeded would land and fail the test
            pass
        finished += 1
    time.sleep(0.6)  # past any re-raise interval
    assert finished == 300
    assert not timelimit._active, "every call leaves the watchdog's list, timed out or not"


def test_limits_are_per_thread():
    results: dict[int, str] = {}

    def worker(k: int) -> None:
        try:
            call_with_time_limit(0.2 if k % 2 else 30, spin if k % 2 else (lambda: time.sleep(0.4)))
            results[k] = "finished"
        except TimeoutError:
            results[k] = "timeout"

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {0: "finished", 1: "timeout", 2: "finished", 3: "timeout"}


def test_extraction_past_its_limit_is_a_timeout_rejection():
    from test_curation_robustness import source_listing

    html = source_listing(2000).decode()
    slow = ExtractText(ExtractConfig(engine="trafilatura", timeout_s=0.05))  # the engine such markup keeps busy
    out = slow.process_limited(Document(id="p", text=html, mime="text/html"), default_limit_s=600)
    assert isinstance(out, Rejection) and (out.stage, out.reason) == ("extract", "timeout")
    assert out.signals["html_chars"] == len(html)
    assert "extract.timeout_s = 0.05" in out.detail  # its own limit, not the runner's default
    kept = ExtractText(ExtractConfig(timeout_s=0)).process_limited(Document(id="p", text=html, mime="text/html"), 0.05)
    assert isinstance(kept, Document) and "pub fn" in kept.text
    with pytest.raises(ValueError, match="timeout_s"):
        ExtractConfig(timeout_s=-1)
