"""Waiting for a sandboxed run: its output read from pipes with a cap, the run ended at its deadline or when
it writes too much, and every process it leaves reaped.

stdout and stderr are pipes, not host files: a file is host disk the program could grow past its size
limit (fallocate with FALLOC_FL_KEEP_SIZE reserves blocks that RLIMIT_FSIZE never sees), a pipe is not. The
parent keeps at most `keep` bytes of each and stops the run as soon as stdout passes `keep` or stderr passes
`stop_at`: nothing it writes beyond that is stored anywhere.

A run is ended by killing the sandbox's init (the PID namespace's pid 1, bwrap's child) first: the kernel
ends the namespace with it, bwrap (or the reaper child_setup leaves between us and bwrap) reaps it, and we
reap our child. Killing bwrap first would orphan init to the host's pid 1, which need not reap it.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class Output:
    stdout: bytes = b""
    stderr: bytes = b""
    written: dict = field(default_factory=lambda: {"stdout": 0, "stderr": 0})  # bytes the program wrote
    over: bool = False  # stopped for writing too much
    timed_out: bool = False


def collect(proc: subprocess.Popen, out_fd: int, err_fd: int, *, keep: int, stop_at: int, deadline: float,
            status_fd: int = -1, status: bytearray | None = None) -> Output:
    """Read both pipes until they close (the run and all it started are done) or the run must stop; then wait
    for `proc` up to the deadline. Bytes from bwrap's status pipe are gathered into `status` on the way (its
    first document names the init to kill). The caller ends the run with `stop` in every case."""
    result = Output()
    open_fds = {out_fd: "stdout", err_fd: "stderr"}
    watched = [*open_fds] + ([status_fd] if status_fd >= 0 else [])
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            result.timed_out = True
            return result
        ready, _, _ = select.select(watched, [], [], min(left, 0.5))
        for fd in ready:
            data = os.read(fd, CHUNK)
            if fd == status_fd:
                if data and status is not None:
                    status.extend(data)
                else:
                    watched.remove(fd)
                continue
            name = open_fds[fd]
            if not data:
                del open_fds[fd]
                watched.remove(fd)
                continue
            result.written[name] += len(data)
            held = getattr(result, name)
            if len(held) <= keep:
                setattr(result, name, held + data[:keep + 1 - len(held)])
            if result.written["stdout"] > keep or result.written["stderr"] >= stop_at:
                result.over = True
                return result
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # it closed both pipes and went on running
        result.timed_out = True
    return result


def init_pid(status: bytes | bytearray) -> int | None:
    """bwrap's first status document: {"child-pid": N}, the sandbox's init as the host numbers it."""
    for line in bytes(status).decode("utf-8", "replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("child-pid"), int):
            return doc["child-pid"]
    return None


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _descends_from(pid: int, ancestor: int, depth: int = 3) -> bool:
    for _ in range(depth):
        parent = _parent_of(pid)
        if parent is None or parent <= 1:
            return False
        if parent == ancestor:
            return True
        pid = parent
    return False


def _kill_init(proc: subprocess.Popen, pid: int | None) -> None:
    """SIGKILL the sandbox's init through a pidfd, once we know the pid is still a descendant of `proc` (bwrap's
    child, or the reaper's once bwrap is gone), not a reused one."""
    if pid is None or proc.poll() is not None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _descends_from(pid, proc.pid):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def stop(proc: subprocess.Popen, init: int | None, *, grace: float = 2.0) -> None:
    """End the run and reap it: its init first (bwrap reaps it and exits), then bwrap's process group (the
    program's own, without isolation), whatever is left of it after `grace` seconds. Returns once `proc` is
    reaped."""
    if proc.returncode is None and init is not None:
        _kill_init(proc, init)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the group id stays reserved while any member lives, so this reaches only the run's processes
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
