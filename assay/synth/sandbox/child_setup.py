"""What every sandboxed program run starts from, shared by the runs (assay/synth/sandbox/run.py) and the isolation probe
(assay/synth/sandbox/isolation.py): the boot script, and the set-up of the child process between fork and exec (a reaper
that outlives bwrap, the run's cgroup, its capped tmpfs, rlimits, the uid drop, the process limit)."""
from __future__ import annotations

import ctypes
import os
import resource

from assay.synth.config import SandboxLimits
from assay.synth.sandbox import run_limits, run_mounts

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot.py")
BWRAP_PROCESSES = 2  # bwrap's own process and the namespace's init, counted by the process limits
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)  # loaded now: the child only calls it


def _stay_as_reaper() -> None:
    """Fork; the new process goes on to become bwrap, this one stays behind as its parent and reaps every
    process of the run that is orphaned to it, then exits with bwrap's status (128 + N for signal N).

    bwrap exits as soon as the sandbox's init reports the program's exit, before that init is reaped: the init
    is orphaned to the nearest subreaper, normally the host's pid 1, which need not reap it (a zombie per run;
    forever where assay itself is pid 1, as in a container). This process is that subreaper. It holds no file
    descriptor (so no pipe of the run stays open through it) and is not in the run's cgroup."""
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    child = os.fork()
    if child == 0:
        return
    os.closerange(0, 1 << 20)
    status = 0
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = st
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def child_setup(limits: SandboxLimits, uid: int | None, base_processes: int = 0, *,
                hierarchy: run_limits.Hierarchy | None = None, cgroup_fds: tuple[int, ...] = (),
                mounts_root: str | None = None, reaper: bool = False):
    """preexec_fn: runs in the child between fork and exec (of bwrap). In this order: with `reaper`, leave a
    reaper behind (see _stay_as_reaper; only under bwrap, whose PID namespace ends every process of the run,
    so the reaper's wait ends too); join the run's cgroup and mount its tmpfs (both need our rights); limits;
    the uid drop; and last the process limit, so the drop cannot be refused for lack of processes. A failure
    is written to stderr (the parent reads it) and stops the start: nothing runs without its limits."""
    nproc = run_limits.process_limit(limits, hierarchy) + BWRAP_PROCESSES + (base_processes if uid is None else 0)
    memory = run_limits.rlimit_memory(limits, hierarchy)
    caller = (os.getuid(), os.getgid())

    def setup() -> None:
        try:
            if reaper:
                _stay_as_reaper()
            for fd in cgroup_fds:
                os.write(fd, b"0")  # "0": the writing process, i.e. this child and all it starts
            if mounts_root is not None:
                run_mounts.mount_private(mounts_root, limits, uid, caller)
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except BaseException as exc:
            os.write(2, f"sandbox set-up failed in the child: {type(exc).__name__}: {exc}\n".encode())
            raise

    return setup
