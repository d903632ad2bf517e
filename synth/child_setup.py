"""What every sandboxed program run starts from, shared by the runs (synth/sandbox.py) and the isolation probe
(synth/isolation.py): the boot script, and the set-up of the child process between fork and exec (rlimits,
the uid drop, the process limit)."""
from __future__ import annotations

import os
import resource

from synth.config import SandboxLimits

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_boot.py")
BWRAP_PROCESSES = 2  # bwrap's own process and the namespace's init, counted by the process limit


def child_setup(limits: SandboxLimits, uid: int | None, base_processes: int = 0):
    """preexec_fn: runs in the child between fork and exec (of bwrap). Limits first, then the uid drop, then
    the process limit, so the drop cannot be refused for lack of processes."""
    nproc = limits.max_processes + BWRAP_PROCESSES + (base_processes if uid is None else 0)

    def setup() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return setup
