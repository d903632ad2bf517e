"""A time limit for one call on the current thread, so that one pathological page cannot stall a worker for minutes.

Some real pages (a source listing with millions of <span>s, say) keep trafilatura busy for minutes. Beam runs DoFns on
worker threads, which SIGALRM cannot reach, and a sandbox subprocess per worker costs a copy of every page. Instead
one watchdog thread per process raises `TimeLimitExceeded` inside the calling thread (CPython's
PyThreadState_SetAsyncExc) once the deadline passes, and again every `REFIRE_S` in case library code swallows it.
The exception lands between Python bytecodes: a single C call is only stopped when it returns to Python, which is
where trafilatura and readability spend their slow loops. The caller gets a TimeoutError and sends the document to
the ledger.
"""
from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
REFIRE_S = 0.25  # after the deadline, raise again this often until the call has unwound


class TimeLimitExceeded(BaseException):
    """Raised asynchronously in a thread past its limit (a BaseException: `except Exception` misses it)."""


class _Call:
    """A running call; it is in `_active` until it has finished, and only then is it finished."""

    __slots__ = ("thread_id", "fire_at")

    def __init__(self, thread_id: int, deadline: float):
        self.thread_id, self.fire_at = thread_id, deadline


# A plain Lock on purpose: its C-level __enter__ leaves no Python frame where a raise could land while it is held.
_lock = threading.Lock()
_wake = threading.Event()  # set when a call starts, so the watchdog recomputes its next deadline
_active: set[_Call] = set()
_watchdog: threading.Thread | None = None


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def _watch() -> None:
    while True:
        with _lock:
            now = time.monotonic()
            for call in _active:
                if now >= call.fire_at:
                    _set_async_exc(call.thread_id, TimeLimitExceeded)
                    call.fire_at = now + REFIRE_S
            next_fire = min((c.fire_at for c in _active), default=None)
        _wake.wait(None if next_fire is None else max(0.0, next_fire - time.monotonic()))
        _wake.clear()


def _start(call: _Call) -> None:
    global _watchdog
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():  # none yet, or this is a forked child
            _watchdog = threading.Thread(target=_watch, name="assay-time-limit", daemon=True)
            _watchdog.start()
        _active.add(call)
    _wake.set()  # nothing can be raised here yet: the new call's deadline lies ahead


def _finish(call: _Call) -> None:
    with _lock:
        _active.discard(call)
        _set_async_exc(call.thread_id, None)  # drop a raise the watchdog made that has not landed yet


def _guarded(seconds: float, fn: Callable[..., T], args: tuple) -> T:
    call = _Call(threading.get_ident(), time.monotonic() + seconds)
    _start(call)
    try:
        return fn(*args)
    finally:
        while True:  # a raise may land inside _finish itself: repeat until the call has left _active
            try:
                _finish(call)
                break
            except TimeLimitExceeded:
                continue


def call_with_time_limit(seconds: float | None, fn: Callable[..., T], *args) -> T:
    """fn(*args), or TimeoutError when it runs longer than `seconds` (None or <= 0: no limit)."""
    if not seconds or seconds <= 0:
        return fn(*args)
    try:
        return _guarded(seconds, fn, args)
    except TimeLimitExceeded:
        raise TimeoutError(f"took longer than {seconds:g} s") from None
