"""The probe's checks of the limits that hold for a whole run (assay/synth/sandbox/run_limits.py,
assay/synth/sandbox/run_mounts.py), from
the host and from inside. Each returns the layers it saw hold, or raises SandboxUnavailable naming the limit
that does not and how to get it: no program runs with a limit missing.

Layers: `run_cgroup_v2` / `run_cgroup_v1` (memory, processes and CPU of the whole run, in its own cgroup) or
`run_rlimit_total` (rlimits whose product is the bound); `inode_cap` (each writable tmpfs capped in bytes and
files); `minimal_dev` (/dev read-only with the few device nodes, and a sized /dev/shm).
"""
from __future__ import annotations

import os

from assay.synth.config import SandboxLimits
from assay.synth.sandbox import run_limits, run_mounts
from assay.synth.sandbox.errors import SandboxUnavailable

PAGE = os.sysconf("SC_PAGE_SIZE")
INSIDE = {"work": "/work", "tmp": "/tmp", "shm": "/dev/shm"}

# run inside the sandbox by the probe program; `report` is its dict of findings
PROBE_SNIPPET = r"""
def _fs(path):
    st = os.statvfs(path)
    return [st.f_blocks * st.f_frsize, st.f_files]
report["fs"] = {p: _fs(p) for p in ("/work", "/tmp", "/dev/shm")}
report["dev"] = sorted(os.listdir("/dev"))
try:
    open("/dev/probe-write", "w").close()
    report["dev_writable"] = True
except OSError:
    report["dev_writable"] = False
"""

CGROUP_FIX = ("run assay as root where cgroup v1 memory and pids controllers are mounted, or under a cgroup v2 "
              "with memory and pids delegated (systemd-run --scope -p Delegate=yes ...)")


def _proc_cgroups(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/cgroup") as fh:
        return run_limits.parse_proc_cgroup(fh.read())


def _rlimits(pid: int) -> dict[str, str]:
    """/proc/<pid>/limits as {name: soft limit}."""
    with open(f"/proc/{pid}/limits") as fh:
        lines = fh.read().splitlines()[1:]
    return {line[:26].strip(): line[26:].split()[0] for line in lines if len(line) > 26}


def check_host_side(pid: int, cgroup: run_limits.RunCgroup | None, limits: SandboxLimits,
                    hierarchy: run_limits.Hierarchy | None, extra_processes: int, nproc: int) -> list[str]:
    """The probe process is inside the run's cgroup and its limits read back, or (without a cgroup) its
    rlimits multiply to the stated total: `nproc` processes, each with its share of the memory."""
    if cgroup is not None:
        seen, want = _proc_cgroups(pid), cgroup.relative_paths()
        missing = sorted(c or "unified" for c, path in want.items() if seen.get(c) != path)
        if missing:
            raise SandboxUnavailable("run_limits", f"the probe is not in the run's cgroup for {missing} "
                                     f"(it is in {seen})", CGROUP_FIX)
        in_force = cgroup.limits_in_force()
        if in_force != {"memory": limits.memory_bytes, "pids": limits.max_processes + extra_processes}:
            raise SandboxUnavailable("run_limits", f"the run's cgroup holds {in_force}, not memory "
                                     f"{limits.memory_bytes} and pids {limits.max_processes + extra_processes}",
                                     CGROUP_FIX)
        return [f"run_{hierarchy.mechanism}"]
    got = _rlimits(pid)
    memory = run_limits.rlimit_memory(limits, None)
    if got.get("Max address space") != str(memory) or got.get("Max processes") != str(nproc):
        raise SandboxUnavailable("run_limits", f"without a cgroup, each process needs an address space limit of "
                                 f"{memory} and a process limit; the probe has {got}", CGROUP_FIX)
    return [f"run_{run_limits.RLIMIT_TOTAL}"]


def _rounded(size: int) -> int:
    return -(-size // PAGE) * PAGE


def check_inside(report: dict, limits: SandboxLimits, devices: tuple[str, ...]) -> list[str]:
    """Each writable tmpfs has its size and file cap; /dev holds only the device nodes and a sized shm."""
    for name, size in run_mounts.sizes(limits).items():
        got = report["fs"][INSIDE[name]]
        if got != [_rounded(size), limits.max_files]:
            raise SandboxUnavailable("inode_cap", f"{INSIDE[name]} is {got[0]} bytes and {got[1]} files, not "
                                     f"{_rounded(size)} and {limits.max_files}",
                                     "run as root, or where unprivileged user namespaces are allowed "
                                     "(the run's tmpfs are mounted in one)")
    if report["dev_writable"] or set(report["dev"]) != {*devices, "shm"}:
        raise SandboxUnavailable("minimal_dev", f"/dev holds {report['dev']} and is "
                                 f"{'writable' if report['dev_writable'] else 'read-only'}",
                                 "use bubblewrap 0.4 or newer (--dev-bind, --remount-ro)")
    return ["inode_cap", "minimal_dev"]
