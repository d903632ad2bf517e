"""A watchdog for the local runner: worker processes that died or stopped fail the run, with the cause.

Beam's FnApiRunner does not notice a worker process that stopped (SIGSTOP, a debugger, a hung C extension
after a fork) and, when a worker exits at start-up (seen inside a network namespace with its loopback
down: "Worker subprocess exited with return code 1"), it waits forever for it. The watchdog looks at this
process's `assay.pipelines.job.beam_worker` children twice a second: a worker that was running and is now gone,
a zombie or stopped, or no worker at all, for `grace_s` seconds while the pipeline still runs, ends the
run with WorkerLost (naming the pid and what happened), after killing the remaining workers.
"""
from __future__ import annotations

import os
import signal
import threading
import time

WORKER_MARK = b"assay.pipelines.job.beam_worker"


class WorkerLost(RuntimeError):
    """The local runner lost a worker process; the run cannot finish."""


def worker_states() -> dict[int, str]:
    """pid -> state letter (R, S, T, Z, ...) of this process's Beam worker children."""
    me, found = str(os.getpid()), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if fields[1].decode() != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if WORKER_MARK in fh.read():
                    found[int(entry)] = fields[0].decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def kill_workers() -> None:
    """Kill this process's Beam worker children (after a failed run)."""
    _kill(worker_states())


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Watchdog(threading.Thread):
    """Watches the pipeline thread's workers from its own thread. On a lost worker it records WorkerLost and
    kills the remaining workers, which makes the runner fail at once; the caller raises `error` instead of
    the runner's own, less telling one ("Channel closed prematurely")."""

    def __init__(self, pipeline: threading.Thread, grace_s: float, startup_s: float = 60.0, interval: float = 0.5):
        super().__init__(daemon=True, name="assay-worker-watchdog")
        self.pipeline, self.grace_s, self.startup_s, self.interval = pipeline, grace_s, startup_s, interval
        self.error: WorkerLost | None = None

    def run(self) -> None:
        started, seen, trouble = time.time(), set(), {}
        while self.pipeline.is_alive():
            time.sleep(self.interval)
            states = worker_states()
            if not self.pipeline.is_alive():
                return
            now = time.time()
            live = {pid for pid, s in states.items() if s not in ("Z", "X")}
            problems = {pid: "exited" for pid in seen - live}
            problems.update({pid: "stopped (state T)" for pid, s in states.items() if s in ("T", "t")})
            seen |= live
            trouble = {pid: trouble.get(pid, (now, what)) for pid, what in problems.items()}
            late = [(pid, what) for pid, (since, what) in trouble.items() if now - since >= self.grace_s]
            if late:
                pid, what = late[0]
                self.error = WorkerLost(
                    f"local worker process {pid} {what} while the pipeline was running, and the local runner "
                    f"cannot replace it; the run was stopped {self.grace_s:g} s later. Look for an out-of-memory "
                    "kill (dmesg) or a crash in the worker's log, lower runner.workers, or use a runner that "
                    "retries failed work (--runner dask)")
            elif not seen and now - started >= self.startup_s:
                self.error = WorkerLost(
                    f"no local worker process was running {self.startup_s:g} s after the start: workers exit at "
                    "once when they cannot reach the runner (the loopback interface is down, or a firewall blocks "
                    "127.0.0.1); check that `python -m assay.pipelines.job.beam_worker --help` runs here")
            if self.error is not None:
                _kill(states)
                return
