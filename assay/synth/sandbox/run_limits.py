"""Limits that hold for a whole sandboxed run, not per process: its memory, its process count, its CPU.

Per-process rlimits do not add up to a bound: 64 processes of 512 MiB address space each is 32 GiB, and
tmpfs pages, inodes and pipe buffers are not address space at all. Where this process may create cgroups
(cgroup v2 with the memory and pids controllers delegated to us, or cgroup v1 with memory and pids mounted,
as root), each run gets its own, and the child of `run_python` moves into it before it execs bwrap:
* memory.max / memory.limit_in_bytes = `memory_bytes`, swap 0: every process of the run, the pages of its
  tmpfs (/work, /tmp, /dev/shm) and the kernel's objects for it (inodes, pipe buffers, page tables) together;
  past it the kernel's OOM killer kills inside the run, and nowhere else;
* pids.max = `max_processes` plus bwrap's two (threads count);
* cpu.max / cpu.cfs_quota_us = `cpus` CPUs of bandwidth, so many processes cannot take every core.
Without a cgroup the fallback is rlimits whose product is the bound (`rlimit_total`): at most
`rlimit_processes` processes (RLIMIT_NPROC, counted in the run's own uid), each with `memory_bytes /
rlimit_processes` of address space; then the tmpfs are bounded by their sizes, not by memory_bytes.

`detect()` says which mechanism this machine offers (cached); `RunCgroup` is one run's cgroup.
"""
from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass

from assay.synth.config import SandboxLimits

CGROUP_V1, CGROUP_V2, RLIMIT_TOTAL = "cgroup_v1", "cgroup_v2", "rlimit_total"
NEEDED = ("memory", "pids")  # without both there is no bound on the run's total: fall back to rlimits
OPTIONAL = ("cpu",)
CPU_PERIOD_US = 100_000  # cgroup cpu quota period: the kernel's default (cpu.max "max 100000")
PREFIX = "assay-run-"


@dataclass(frozen=True)
class Hierarchy:
    """Where runs' cgroups are made: for v2 one folder (key ""), for v1 one folder per controller."""

    version: int
    bases: dict[str, str]
    controllers: tuple[str, ...]  # of NEEDED and OPTIONAL, those each run's cgroup has

    @property
    def mechanism(self) -> str:
        return CGROUP_V2 if self.version == 2 else CGROUP_V1


def _read(path: str, default: str | None = None) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        if default is None:
            raise
        return default


def _open_wo(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CLOEXEC)


def _write(path: str, value: str) -> None:
    fd = _open_wo(path)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 line is under ""."""
    found = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def _mounts(text: str) -> list[tuple[str, str, str, set[str]]]:
    """cgroup mounts from /proc/self/mountinfo: (fstype, mount root, mount point, options)."""
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], fields[3], fields[4].replace("\\040", " "), set(tail[2].split(","))))
    return found


def _folder(mount_point: str, mount_root: str, path: str) -> str | None:
    """The folder of cgroup `path` under a mount of `mount_root`; None when the mount does not show it."""
    if mount_root != "/" and path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
        return None
    rel = path[len(mount_root.rstrip("/")):] if mount_root != "/" else path
    return os.path.join(mount_point, rel.lstrip("/"))


def _can_make_children(base: str) -> bool:
    trial = os.path.join(base, f"{PREFIX}check-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.mkdir(trial)
    except OSError:
        return False
    try:
        os.rmdir(trial)
    except OSError:
        pass
    return True


def _v2(mounts, own) -> Hierarchy | None:
    for fstype, root, point, _ in mounts:
        base = _folder(point, root, own.get("", "")) if fstype == "cgroup2" and "" in own else None
        if base is None or not os.path.isdir(base):
            continue
        available = _read(os.path.join(base, "cgroup.controllers"), "").split()
        if not all(c in available for c in NEEDED):
            continue
        enabled = _read(os.path.join(base, "cgroup.subtree_control"), "").split()
        for c in (*NEEDED, *OPTIONAL):
            if c in available and c not in enabled:
                try:  # refused (EBUSY) when our own cgroup holds processes and is not the root
                    _write(os.path.join(base, "cgroup.subtree_control"), f"+{c}")
                except OSError:
                    pass
        enabled = _read(os.path.join(base, "cgroup.subtree_control"), "").split()
        if all(c in enabled for c in NEEDED) and _can_make_children(base):
            return Hierarchy(2, {"": base}, tuple(c for c in (*NEEDED, *OPTIONAL) if c in enabled))
    return None


def _v1(mounts, own) -> Hierarchy | None:
    bases = {}
    for controller in (*NEEDED, *OPTIONAL):
        for fstype, root, point, options in mounts:
            if fstype == "cgroup" and controller in options and controller in own:
                base = _folder(point, root, own[controller])
                if base and os.path.isdir(base) and _can_make_children(base):
                    bases[controller] = base
                    break
    return Hierarchy(1, bases, tuple(bases)) if all(c in bases for c in NEEDED) else None


def find_hierarchy(cgroup_text: str, mountinfo_text: str) -> Hierarchy | None:
    """The hierarchy runs' cgroups go in, v2 first; None when neither offers memory and pids we may use."""
    mounts, own = _mounts(mountinfo_text), parse_proc_cgroup(cgroup_text)
    return _v2(mounts, own) or _v1(mounts, own)


_LOCK = threading.Lock()
_DETECTED: list[Hierarchy | None] = []


def detect() -> Hierarchy | None:
    """This process's hierarchy for runs' cgroups, or None (then `rlimit_total` applies); checked once."""
    with _LOCK:
        if not _DETECTED:
            try:
                _DETECTED.append(find_hierarchy(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo")))
            except OSError:
                _DETECTED.append(None)
        return _DETECTED[0]


def forget_detected() -> None:
    with _LOCK:
        _DETECTED.clear()


def mechanism(hierarchy: Hierarchy | None) -> str:
    return hierarchy.mechanism if hierarchy else RLIMIT_TOTAL


def rlimit_memory(limits: SandboxLimits, hierarchy: Hierarchy | None) -> int:
    """RLIMIT_AS of each process: the whole budget under a cgroup (which bounds the sum), else a share of it."""
    return limits.memory_bytes if hierarchy else limits.memory_bytes // limits.rlimit_processes


def process_limit(limits: SandboxLimits, hierarchy: Hierarchy | None) -> int:
    return limits.max_processes if hierarchy else limits.rlimit_processes


class RunCgroup:
    """One run's cgroup, made with its limits in place; the child joins it by writing "0" to `join_fds`."""

    def __init__(self, hierarchy: Hierarchy, limits: SandboxLimits, extra_processes: int):
        self.hierarchy, self.name = hierarchy, f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        self.dirs = {c: os.path.join(base, self.name) for c, base in hierarchy.bases.items()}
        self.join_fds: list[int] = []
        try:
            for folder in self.dirs.values():
                os.mkdir(folder, 0o700)
            self._set(limits, extra_processes)
            for folder in self.dirs.values():
                self.join_fds.append(_open_wo(os.path.join(folder, "cgroup.procs")))
        except OSError:
            self.remove()
            raise

    def _file(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs["" if self.hierarchy.version == 2 else controller], name)

    def _set(self, limits: SandboxLimits, extra_processes: int) -> None:
        pids, memory = str(limits.max_processes + extra_processes), str(limits.memory_bytes)
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        if self.hierarchy.version == 2:
            _write(self._file("memory", "memory.max"), memory)
            if os.path.exists(self._file("memory", "memory.swap.max")):
                _write(self._file("memory", "memory.swap.max"), "0")
            _write(self._file("pids", "pids.max"), pids)
            if "cpu" in self.hierarchy.controllers:
                _write(self._file("cpu", "cpu.max"), f"{quota} {CPU_PERIOD_US}")
            return
        _write(self._file("memory", "memory.limit_in_bytes"), memory)
        if os.path.exists(self._file("memory", "memory.memsw.limit_in_bytes")):  # swap accounting: no swap either
            _write(self._file("memory", "memory.memsw.limit_in_bytes"), memory)
        _write(self._file("pids", "pids.max"), pids)
        if "cpu" in self.hierarchy.controllers:
            _write(self._file("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(self._file("cpu", "cpu.cfs_quota_us"), str(quota))

    def relative_paths(self) -> dict[str, str]:
        """{controller: path} as /proc/<pid>/cgroup of a member shows it (v2 under "")."""
        own = parse_proc_cgroup(_read("/proc/self/cgroup"))
        return {c: own[c].rstrip("/") + "/" + self.name for c in self.dirs}

    def limits_in_force(self) -> dict[str, int]:
        """Memory and process limits read back from the kernel."""
        if self.hierarchy.version == 2:
            return {"memory": int(_read(self._file("memory", "memory.max"))),
                    "pids": int(_read(self._file("pids", "pids.max")))}
        return {"memory": int(_read(self._file("memory", "memory.limit_in_bytes"))),
                "pids": int(_read(self._file("pids", "pids.max")))}

    def peak_memory(self) -> int | None:
        name = "memory.peak" if self.hierarchy.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self._file("memory", name), "")
        return int(text) if text.strip().isdigit() else None

    def oom_kills(self) -> int:
        name = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        for line in _read(self._file("memory", name), "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def _members(self) -> list[int]:
        pids = set()
        for folder in self.dirs.values():
            pids.update(int(p) for p in _read(os.path.join(folder, "cgroup.procs"), "").split())
        return sorted(pids)

    def remove(self, wait: float = 2.0) -> None:
        """Remove the cgroup once its processes are gone (a run's are, once bwrap is reaped: its PID namespace
        took them); a straggler is killed. Best effort: an empty folder left behind holds nothing."""
        for fd in self.join_fds:
            os.close(fd)
        self.join_fds = []
        deadline = time.monotonic() + wait
        for folder in self.dirs.values():
            while os.path.isdir(folder):
                try:
                    os.rmdir(folder)
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    for pid in self._members():
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    time.sleep(0.01)
