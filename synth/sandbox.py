"""Runs untrusted Python (model-written solutions, answer programs) in an OS-enforced sandbox.

The isolation is the kernel's, applied by bubblewrap and checked before the first run (synth/isolation.py):
user, PID, network, mount, IPC and UTS namespaces; a read-only view of only the interpreter; private tmpfs
as /work and /tmp; a seccomp filter; no capabilities; a fresh uid per run when we are root; nothing
outlives a run. On top: kernel resource limits (CPU seconds, address space, largest file written, open
files, processes), a wall-clock timeout, and an audit-hook tripwire (synth/sandbox_boot.py) that turns
plain attempts into a readable `blocked` status.

It fails closed: when a layer cannot be applied, `run_python` raises SandboxUnavailable (naming the layer
and the fix) and runs nothing. The only way past is the loudly named `unsafe_no_isolation` setting, whose
runs list "UNSAFE_no_os_isolation" in `isolation` (and every row they produce records it).
`SandboxResult.status` says how a run ended; `isolation` lists the layers that were in force.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from synth import isolation
from synth.child_setup import BOOT, child_setup
from synth.config import SandboxLimits
from synth.isolation import SandboxUnavailable

UNISOLATED_LAYERS = [isolation.UNSAFE, "rlimits", "timeout", "audit_hook", "private_workdir"]

__all__ = ["SandboxResult", "SandboxUnavailable", "require_isolation", "run_python"]


@dataclass
class SandboxResult:
    status: str  # ok | error | blocked | timeout | cpu_limit | memory_limit | output_limit | killed | start_failed
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        """One line for the ledger."""
        tail = self.stderr.strip().splitlines()[-1:] if self.stderr.strip() else []
        return f"{self.status} (exit {self.returncode}, {self.seconds:.2f}s){': ' + tail[0] if tail else ''}"


def require_isolation(limits: SandboxLimits | None = None) -> list[str]:
    """The layers runs will have; raises SandboxUnavailable when they cannot be applied. Call it before a job
    starts, so a machine that cannot isolate stops the run at once rather than inside a worker."""
    if (limits or SandboxLimits()).unsafe_no_isolation:
        return list(UNISOLATED_LAYERS)
    return list(isolation.verified_isolation().layers)


def _own_processes() -> int:
    """Processes of our uid now: unprivileged runs share it, so their process limit sits this far above."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                continue
    return count


def _read_capped(path: str, cap: int) -> tuple[str, bool]:
    with open(path, "rb") as fh:
        data = fh.read(cap + 1)
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def _classify(returncode: int | None, timed_out: bool, stderr: str, over_cap: bool) -> str:
    if timed_out:
        return "timeout"
    if returncode == -signal.SIGXCPU:
        return "cpu_limit"
    if returncode == -signal.SIGKILL:  # we kill only on timeout: the kernel did (hard CPU limit, OOM killer)
        return "killed"
    if returncode == -signal.SIGXFSZ or over_cap:
        return "output_limit"
    if "SandboxViolation" in stderr:
        return "blocked"
    if "MemoryError" in stderr:
        return "memory_limit"
    if returncode == 0:
        return "ok"
    return "error"


def _prepare(root: str, source: str) -> tuple[str, str]:
    """program.py and a copy of the boot script in the run's host folder (the unisolated path only)."""
    program, boot = os.path.join(root, "program.py"), os.path.join(root, "boot.py")
    with open(program, "w", encoding="utf-8") as fh:
        fh.write(source)
    shutil.copyfile(BOOT, boot)
    return program, boot


def _boot_source() -> bytes:
    with open(BOOT, "rb") as fh:
        return fh.read()


def run_python(source: str, limits: SandboxLimits | None = None, *, tripwire: bool = True) -> SandboxResult:
    """Execute `source` with Python in a fresh sandbox. Never raises for anything the program does; raises
    SandboxUnavailable when the sandbox itself cannot be applied. `tripwire=False` leaves out the audit
    hook, so tests can check that the OS layers hold on their own."""
    limits = limits or SandboxLimits()
    iso = None if limits.unsafe_no_isolation else isolation.verified_isolation()
    root = tempfile.mkdtemp(prefix="assay-sandbox-")
    fds: list[int] = []
    started_r, started_w = os.pipe()
    status_r = -1
    try:
        out_path, err_path = os.path.join(root, "stdout"), os.path.join(root, "stderr")
        mode = "tripwire" if tripwire else "no-tripwire"
        if iso is None:
            program, boot = _prepare(root, source)
            work = os.path.join(root, "work")
            os.mkdir(work, 0o700)
            cmd = [sys.executable, "-I", "-S", boot, work, program, mode, str(started_w)]
            uid, base, cwd, layers = None, _own_processes(), work, list(UNISOLATED_LAYERS)
            env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        else:
            status_r, status_w = os.pipe()
            program_fd, boot_fd = isolation.data_fd(source.encode("utf-8")), isolation.data_fd(_boot_source())
            sec = isolation.seccomp_fd()
            fds += [status_w, program_fd, boot_fd, sec]
            cmd = isolation.bwrap_command(iso.bwrap, iso.view, status_fd=status_w, seccomp_fd=sec,
                                          disk_bytes=limits.disk_bytes, program_fd=program_fd, boot_fd=boot_fd,
                                          started_fd=started_w, tripwire=tripwire)
            uid = isolation.run_uid()
            base = 0 if uid is not None else _own_processes()
            cwd, env = root, {}
            layers = list(iso.layers) + (["audit_hook"] if tripwire else [])
        start = time.perf_counter()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        close_fds=True, pass_fds=(*fds, started_w), start_new_session=True,
                                        preexec_fn=child_setup(limits, uid, base))
            except (OSError, subprocess.SubprocessError) as exc:  # e.g. the process limit is reached
                return SandboxResult("start_failed", None, "", f"{type(exc).__name__}: {exc}",
                                     time.perf_counter() - start, layers)
            for fd in (*fds, started_w):
                os.close(fd)
            fds, started_w = [], -1
            try:
                proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # bwrap: its namespace's init dies with it, and all inside
                except ProcessLookupError:
                    pass
                proc.wait()
        seconds = time.perf_counter() - start
        returncode = proc.returncode
        stdout, over = _read_capped(out_path, limits.output_bytes)
        stderr, _ = _read_capped(err_path, limits.output_bytes)
        if not isolation.wait_started(started_r, proc, 0):  # the sandbox was never set up: nothing ran
            return SandboxResult("start_failed", returncode, "", f"sandbox set-up failed: {stderr.strip()[-500:]}",
                                 seconds, layers)
        over = over or any(os.path.getsize(p) >= limits.file_bytes for p in (out_path, err_path))
        if iso is not None:
            status = isolation.read_status(status_r)
            if "exit-code" in status:
                code = int(status["exit-code"])
                returncode = -(code - 128) if code > 128 else code  # bwrap reports a signal as 128 + its number
        return SandboxResult(_classify(returncode, timed_out, stderr, over), returncode, stdout, stderr, seconds,
                             layers)
    finally:
        for fd in (*fds, started_r, started_w, status_r):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
