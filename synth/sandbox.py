"""Runs untrusted Python (model-written solutions, answer programs) in a locked-down child process.

Layers, each enforced even if another fails:
* kernel resource limits (setrlimit in the child): CPU seconds (SIGXCPU), address space, largest file
  written (SIGXFSZ; stdout and stderr are files, so this also caps output), open files, processes;
* a wall-clock timeout; on expiry, or whenever the run ends, the child's whole process group is killed;
* network: when we may (root, or unprivileged user namespaces), the child enters a new network namespace
  (unshare CLONE_NEWNET) that has no interface but a down loopback, so no connection can succeed;
* when we are root, the child drops to uid/gid 65534 (nobody): the kernel then refuses writes to every
  path it does not own (its work directory is the only one it owns) and enforces the process limit;
* an audit hook installed before the program runs (synth/sandbox_boot.py) refuses sockets, process
  creation, ctypes, and reads/writes outside the work directory (world-writable places like /tmp
  included), raising SandboxViolation;
* a fresh temporary work directory as cwd and HOME, deleted afterwards; `python -I -S` (no user site,
  no site-packages, no environment variables).
`SandboxResult.status` says how a run ended; `isolation` lists which layers were in force.
"""
from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from synth.config import SandboxLimits

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NOBODY = 65534
BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_boot.py")


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


# Resolved once in the parent: between fork and exec the child must not take the dynamic loader's lock
# (another thread of a Beam worker may hold it), so it only calls this already-looked-up function.
_UNSHARE = ctypes.CDLL(None, use_errno=True).unshare


def _unshare(flags: int) -> bool:
    return _UNSHARE(flags) == 0


def _child_setup(limits: SandboxLimits, as_root: bool, drop: bool):
    """preexec_fn: runs in the child between fork and exec. Order matters: unshare needs privileges, so it
    comes before the uid drop; limits come last so the drop cannot be refused for lack of processes."""

    def setup() -> None:
        if as_root:
            _unshare(CLONE_NEWNET)
        elif not _unshare(CLONE_NEWUSER | CLONE_NEWNET):
            pass  # no user namespaces here: the audit hook still refuses sockets
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

    return setup


def _world_executable(path: str) -> bool:
    """True when a user with no special rights can run `path` (o+x on the file and every directory above)."""
    path = os.path.realpath(path)
    if not os.path.isfile(path) or not os.stat(path).st_mode & 0o001:
        return False
    parent = os.path.dirname(path)
    while True:
        if not os.stat(parent).st_mode & 0o001:
            return False
        if parent == "/":
            return True
        parent = os.path.dirname(parent)


def sandbox_interpreter(as_root: bool) -> tuple[str, bool]:
    """(python to run, whether to drop to nobody). Root drops privileges, so it needs an interpreter that
    nobody may execute: ours if it is world-executable, else the system python3 (the program only needs
    the standard library). Without one, the child stays root and the other layers still hold."""
    if not as_root:
        return sys.executable, False
    for candidate in (sys.executable, "/usr/bin/python3"):
        if _world_executable(candidate):
            return os.path.realpath(candidate), True
    return sys.executable, False


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


def run_python(source: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Execute `source` with Python in a fresh sandbox; never raises for anything the program does."""
    limits = limits or SandboxLimits()
    as_root = os.geteuid() == 0
    python, drop = sandbox_interpreter(as_root)
    root = tempfile.mkdtemp(prefix="assay-sandbox-")
    try:
        os.chmod(root, 0o755)
        work = os.path.join(root, "work")
        os.mkdir(work, 0o700)
        if drop:
            os.chown(work, NOBODY, NOBODY)
        boot = os.path.join(root, "boot.py")  # a copy the unprivileged child can read wherever the repo lives
        shutil.copyfile(BOOT, boot)
        os.chmod(boot, 0o644)
        program = os.path.join(root, "program.py")
        with open(program, "w", encoding="utf-8") as fh:
            fh.write(source)
        out_path, err_path = os.path.join(root, "stdout"), os.path.join(root, "stderr")
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        start = time.perf_counter()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen([python, "-I", "-S", boot, work, program], cwd=work, env=env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True,
                                        start_new_session=True, preexec_fn=_child_setup(limits, as_root, drop))
            except (OSError, subprocess.SubprocessError) as exc:  # e.g. the process limit is reached
                return SandboxResult("start_failed", None, "", f"{type(exc).__name__}: {exc}",
                                     time.perf_counter() - start)
            try:
                proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it left behind
                except ProcessLookupError:
                    pass
                proc.wait()
        seconds = time.perf_counter() - start
        stdout, over = _read_capped(out_path, limits.output_bytes)
        stderr, _ = _read_capped(err_path, limits.output_bytes)
        isolation = ["rlimits", "timeout", "audit_hook", "private_workdir"]
        isolation += ["netns"] if as_root else ["userns_netns_if_permitted"]
        isolation += ["uid_nobody"] if drop else []
        return SandboxResult(_classify(proc.returncode, timed_out, stderr, over), proc.returncode, stdout, stderr,
                             seconds, isolation)
    finally:
        shutil.rmtree(root, ignore_errors=True)
