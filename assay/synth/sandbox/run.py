"""Runs untrusted Python (model-written solutions, answer programs) in an OS-enforced sandbox.

The isolation is the kernel's, applied by bubblewrap and checked before the first run
(assay/synth/sandbox/isolation.py):
user, PID, network, mount, IPC and UTS namespaces; a read-only view of only the interpreter; private tmpfs
as /work, /tmp and /dev/shm, capped in bytes and files; a seccomp filter; no capabilities; a fresh uid per
run when we are root; nothing outlives a run, and nothing of it is left unreaped. Limits that hold for the
whole run, not per process: its memory (tmpfs and kernel objects included), processes and CPU share, in a
cgroup of its own where the machine offers one, else rlimits whose product is the bound
(assay/synth/sandbox/run_limits.py). On top: per-process rlimits (CPU seconds, address space, largest file written, open
files), stdout and stderr as pipes read with a cap (assay/synth/sandbox/wait.py), a wall-clock timeout, and an
audit-hook tripwire (assay/synth/sandbox/boot.py) that turns plain attempts into a readable `blocked` status.

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

from assay.synth.config import SandboxLimits
from assay.synth.sandbox import isolation, run_limits, run_mounts
from assay.synth.sandbox import wait as sandbox_wait
from assay.synth.sandbox.child_setup import BOOT, BWRAP_PROCESSES, child_setup
from assay.synth.sandbox.errors import SandboxUnavailable

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
    peak_memory_bytes: int | None = None  # the run's cgroup's peak (every process, its tmpfs, kernel objects)

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


def _classify(returncode: int | None, out: sandbox_wait.Output, stderr: str, oom_kills: int) -> str:
    if out.timed_out:
        return "timeout"
    if out.over:  # we stopped it for writing too much
        return "output_limit"
    if returncode == -signal.SIGXCPU:
        return "cpu_limit"
    if oom_kills and returncode != 0:  # the run's cgroup ran out of memory: the kernel killed inside it
        return "memory_limit"
    if returncode == -signal.SIGKILL:  # we kill only on timeout and output: the kernel did (hard CPU limit)
        return "killed"
    if returncode == -signal.SIGXFSZ:
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


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


@dataclass
class _Launch:
    """How one run is started: the command, where, as whom, and the descriptors the child inherits."""

    cmd: list[str]
    cwd: str
    env: dict[str, str]
    uid: int | None
    base_processes: int
    mounts_root: str | None
    layers: list[str]
    pass_fds: list[int]
    status_r: int = -1


def _unisolated(root: str, source: str, mode: str, started_w: int, hierarchy) -> _Launch:
    program, boot = _prepare(root, source)
    work = os.path.join(root, "work")
    os.mkdir(work, 0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    return _Launch([sys.executable, "-I", "-S", boot, work, program, mode, str(started_w)], work, env, None,
                   _own_processes(), None,
                   list(UNISOLATED_LAYERS) + [f"run_{run_limits.mechanism(hierarchy)}", "output_pipes"], [])


def _isolated(iso: isolation.Isolation, root: str, source: str, tripwire: bool, started_w: int) -> _Launch:
    status_r, status_w = _pipe()
    program_fd, boot_fd = isolation.data_fd(source.encode("utf-8")), isolation.data_fd(_boot_source())
    sec = isolation.seccomp_fd()
    cmd = isolation.bwrap_command(iso.bwrap, iso.view, status_fd=status_w, seccomp_fd=sec,
                                  mounts=run_mounts.prepare(root), program_fd=program_fd, boot_fd=boot_fd,
                                  started_fd=started_w, tripwire=tripwire)
    uid = isolation.run_uid()
    # a run's processes are counted alone: in its own uid as root, else in its own user namespace (Linux 5.14+)
    base = 0 if uid is not None or run_mounts.nproc_per_user_namespace() else _own_processes()
    layers = list(iso.layers) + (["audit_hook"] if tripwire else [])
    return _Launch(cmd, root, {}, uid, base, root, layers, [status_w, program_fd, boot_fd, sec], status_r)


def run_python(source: str, limits: SandboxLimits | None = None, *, tripwire: bool = True) -> SandboxResult:
    """Execute `source` with Python in a fresh sandbox. Never raises for anything the program does; raises
    SandboxUnavailable when the sandbox itself cannot be applied. `tripwire=False` leaves out the audit
    hook, so tests can check that the OS layers hold on their own."""
    limits = limits or SandboxLimits()
    iso = None if limits.unsafe_no_isolation else isolation.verified_isolation()
    hierarchy = iso.hierarchy if iso is not None else run_limits.detect()
    root = run_mounts.run_folder() if iso is not None else tempfile.mkdtemp(prefix="assay-sandbox-")
    started_r, started_w = os.pipe()
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    ours = [started_w, out_w, err_w]  # the child's ends: closed once it has them
    launch, cgroup, status = None, None, bytearray()
    try:
        mode = "tripwire" if tripwire else "no-tripwire"
        launch = (_unisolated(root, source, mode, started_w, hierarchy) if iso is None
                  else _isolated(iso, root, source, tripwire, started_w))
        ours += launch.pass_fds
        if hierarchy is not None:
            try:
                cgroup = run_limits.RunCgroup(hierarchy, limits, BWRAP_PROCESSES)
            except OSError as exc:  # it worked for the probe: fail closed rather than run without it
                raise SandboxUnavailable("run_limits", f"no cgroup for this run ({exc})",
                                         "check free cgroup slots (cgroup.max.descendants) and that nothing removed "
                                         "the delegation") from None
        setup = child_setup(limits, launch.uid, launch.base_processes, hierarchy=hierarchy,
                            mounts_root=launch.mounts_root, cgroup_fds=tuple(cgroup.join_fds) if cgroup else (),
                            reaper=iso is not None)
        start = time.perf_counter()
        deadline = time.monotonic() + limits.wall_seconds
        try:
            proc = subprocess.Popen(launch.cmd, cwd=launch.cwd, env=launch.env, stdin=subprocess.DEVNULL,
                                    stdout=out_w, stderr=err_w, close_fds=True,
                                    pass_fds=(*launch.pass_fds, started_w), start_new_session=True,
                                    preexec_fn=setup)
        except (OSError, subprocess.SubprocessError) as exc:  # e.g. the process limit is reached
            detail = _available(err_r).decode("utf-8", "replace").strip()
            return SandboxResult("start_failed", None, "", detail or f"{type(exc).__name__}: {exc}",
                                 time.perf_counter() - start, launch.layers)
        for fd in ours:
            os.close(fd)
        ours = []
        out = sandbox_wait.collect(proc, out_r, err_r, keep=limits.output_bytes, stop_at=limits.file_bytes,
                                   deadline=deadline, status_fd=launch.status_r, status=status)
        sandbox_wait.stop(proc, sandbox_wait.init_pid(status) if iso is not None else None)
        seconds = time.perf_counter() - start
        returncode = proc.returncode
        if iso is not None and returncode is not None and returncode > 128:  # the reaper's report of a signal
            returncode = -(returncode - 128)
        stdout = out.stdout[:limits.output_bytes].decode("utf-8", "replace")
        stderr = out.stderr[:limits.output_bytes].decode("utf-8", "replace")
        if not isolation.wait_started(started_r, proc, 0):  # the sandbox was never set up: nothing ran
            return SandboxResult("start_failed", returncode, "", f"sandbox set-up failed: {stderr.strip()[-500:]}",
                                 seconds, launch.layers)
        if iso is not None:
            os.set_blocking(launch.status_r, True)  # bwrap is gone: this reads to the end
            merged = isolation.parse_status(bytes(status) + _read_all(launch.status_r))
            if "exit-code" in merged:
                code = int(merged["exit-code"])
                returncode = -(code - 128) if code > 128 else code  # bwrap reports a signal as 128 + its number
        oom = cgroup.oom_kills() if cgroup else 0
        return SandboxResult(_classify(returncode, out, stderr, oom), returncode, stdout, stderr, seconds,
                             launch.layers, peak_memory_bytes=cgroup.peak_memory() if cgroup else None)
    finally:
        for fd in (*ours, started_r, out_r, err_r, launch.status_r if launch else -1):
            if fd >= 0:
                os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(root, ignore_errors=True)


def _available(fd: int) -> bytes:
    """What a non-blocking pipe holds now."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
