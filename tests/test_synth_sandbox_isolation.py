"""The sandbox's OS layers, each checked by a real hostile program with the audit hook left out
(tripwire=False), and the ways it must fail closed, simulated with sandbox tools that fail or lie."""
import errno
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid

import pytest

from assay.synth import exercises
from assay.synth.config import SandboxLimits
from assay.synth.sandbox import SandboxUnavailable, isolation, require_isolation, run_python, seccomp

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=3.0, file_bytes=200_000, output_bytes=20_000)
SECRET = "assay-test-secret-" + uuid.uuid4().hex


@pytest.fixture()
def listener():
    """A TCP server in the parent's network namespace that records every connection it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join()
    srv.close()


def test_tampering_with_the_boot_script_does_not_switch_the_tripwire_off():
    code = ("import __main__ as m, sys\n"
            "for mod in (m, sys.modules['__main__']):\n"
            "    mod._inside = lambda p, r: True\n"
            "    mod.BLOCKED_EVENTS = ('\\0',)\n"
            "    mod.BLOCKED_MODULES = set()\n"
            "print(open('/etc/hostname').read())")
    r = run_python(code, LIMITS)
    assert r.status == "blocked" and r.stdout == "", r.stderr
    for code in ("import _testcapi", "import gc\ngc.get_objects()", "import sys\nsys.settrace(print)",
                 "import ctypes",
                 "try:\n    open('/etc/passwd')\nexcept Exception as e:\n    print(e.__traceback__.tb_frame.f_locals)"):
        r = run_python(code, LIMITS)
        assert not r.ok and r.stdout == "", (code, r.stdout)


@pytest.mark.parametrize("tripwire", [True, False], ids=["tripwire", "os-only"])
def test_the_host_file_system_is_not_there(tripwire):
    for code in ("import os\nos.chdir('/etc')\nprint(open('hostname').read())",
                 "print(open('/etc/hostname').read())",
                 "import os\nprint(os.listdir('/proc'))",
                 "print(open('/proc/1/environ').read())",
                 "import os\nprint(os.listdir('/root'), os.listdir('/home'))",
                 f"print(open({os.path.abspath(__file__)!r}).read())"):
        r = run_python(code, LIMITS, tripwire=tripwire)
        assert not r.ok and r.stdout == "", (code, r.stdout)
    r = run_python("import os\nprint(sorted(os.listdir('/')))", LIMITS, tripwire=False)
    assert r.ok, r.stderr
    assert not {"etc", "proc", "home", "root", "var", "sys"} & set(json.loads(r.stdout.replace("'", '"'))), r.stdout


def test_the_parents_environment_and_processes_are_invisible(monkeypatch):
    monkeypatch.setenv("ASSAY_TEST_SECRET", SECRET)
    code = ("import os\nprint(dict(os.environ))\n"
            "for pid in range(1, 64):\n"
            "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n    except OSError:\n        pass\n")
    r = run_python(code, LIMITS, tripwire=False)
    assert r.ok, r.stderr
    assert SECRET not in r.stdout and "ASSAY_TEST_SECRET" not in r.stdout


def test_network_is_unreachable_without_the_audit_hook(listener):
    port, accepted = listener
    for code in (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
                 f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
                 "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0any')"):
        r = run_python(code, LIMITS, tripwire=False)
        assert not r.ok and ("PermissionError" in r.stderr or "Operation not permitted" in r.stderr), r.stderr
    assert accepted == []


def test_kernel_interfaces_are_denied_by_the_seccomp_filter():
    calls = {name: seccomp.syscall_number(name) for name in ("ptrace", "unshare", "mount", "keyctl", "bpf", "setns")}
    code = ("import ctypes, json\nlibc = ctypes.CDLL(None, use_errno=True)\nout = {}\n"
            f"for name, nr in {calls!r}.items():\n"
            "    rc = libc.syscall(nr, 0, 0, 0, 0)\n    out[name] = (rc, ctypes.get_errno())\n"
            "print(json.dumps(out))")
    r = run_python(code, LIMITS, tripwire=False)
    assert r.ok, r.stderr
    for name, (rc, err) in json.loads(r.stdout).items():
        assert rc == -1 and err == errno.EPERM, (name, rc, err)


def test_the_filter_program_is_well_formed():
    for machine in seccomp.DENIED:
        prog = seccomp.deny_filter(machine)
        assert len(prog) % 8 == 0 and len(prog) // 8 < 4096  # struct sock_filter is 8 bytes; BPF_MAXINSNS
    with pytest.raises(KeyError):
        seccomp.deny_filter("sparc")


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("ending", ["exits", "times_out"])
def test_nothing_outlives_its_run(ending):
    """A setsid'd grandchild (its own session and process group) dies with the run's PID namespace."""
    marker = f"assay-outlive-{uuid.uuid4().hex}"
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n    os.setsid()\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
            "time.sleep(0.5)\n" + ("time.sleep(60)\n" if ending == "times_out" else "print('parent done')\n"))
    r = run_python(code, SandboxLimits(cpu_seconds=2, wall_seconds=2.0), tripwire=False)
    assert r.status == ("timeout" if ending == "times_out" else "ok"), r.stderr
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == []


def test_runs_cannot_reach_each_other():
    """One run plants files and a process that keeps writing; the next sees none of it."""
    plant = ("import os, sys\n"
             "for d in ('/work', '/tmp'):\n    open(d + '/answer.txt', 'w').write('42')\n"
             "if os.fork() == 0:\n    os.setsid()\n"
             "    os.execv(sys.executable, [sys.executable, '-c', "
             "'import time\\nwhile True:\\n    open(\"/work/answer.txt\", \"w\").write(\"42\")\\n    "
             "time.sleep(0.01)'])\n"
             "print('planted')")
    r = run_python(plant, LIMITS, tripwire=False)
    assert r.ok and r.stdout.strip() == "planted", r.stderr
    look = "import os\nprint(sorted(os.listdir('/work')), sorted(os.listdir('/tmp')))"
    r = run_python(look, LIMITS, tripwire=False)
    assert r.ok and r.stdout.strip() == "[] []", (r.stdout, r.stderr)


def test_each_run_has_its_own_uid_when_root():
    if os.geteuid() != 0:
        pytest.skip("as an unprivileged user every run keeps that user's uid inside a user namespace")
    uids = {isolation.run_uid() for _ in range(50)}
    assert len(uids) == 50 and all(u >= 0x10000000 for u in uids)
    assert "uid_per_run" in run_python("print(1)", LIMITS).isolation


def test_a_fork_bomb_without_the_hook_is_contained():
    r = run_python("import os\nwhile True:\n    os.fork()", SandboxLimits(cpu_seconds=2, wall_seconds=4.0),
                   tripwire=False)
    assert not r.ok and r.seconds < 6
    assert run_python("print('still fine')", LIMITS).stdout.strip() == "still fine"


def test_flooding_stderr_is_an_output_limit():
    r = run_python("import sys\nwhile True:\n    sys.stderr.write('x' * 65536)", LIMITS)
    assert r.status == "output_limit", r.reason()
    r = run_python("import sys\nsys.stderr.write('x' * (100 * 1024 * 1024))", LIMITS)
    assert r.status == "output_limit", r.reason()


def test_the_private_disk_is_capped():
    r = run_python("open('/work/big', 'wb').write(b'x' * (64 * 1024 * 1024))",
                   SandboxLimits(file_bytes=128 * 1024 * 1024, disk_bytes=4 * 1024 * 1024), tripwire=False)
    assert not r.ok and "No space left" in r.stderr, r.stderr


def test_isolation_lists_the_layers_in_force():
    r = run_python("print(1)", LIMITS)
    for layer in ("userns", "pidns", "netns", "mntns", "ipcns", "utsns", "seccomp", "no_new_privs",
                  "no_capabilities", "readonly_view", "private_tmpfs", "no_network", "audit_hook"):
        assert layer in r.isolation, r.isolation
    assert "audit_hook" not in run_python("print(1)", LIMITS, tripwire=False).isolation


# --- fail closed ------------------------------------------------------------------------------------

@pytest.fixture()
def fresh_check():
    """Each test sees the machine as it makes it look; the real check is redone afterwards."""
    isolation.forget_verified()
    yield
    isolation.forget_verified()


@pytest.fixture()
def public_dir():
    """A folder the run's uid can reach (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="assay-test-fake-bwrap-", dir="/var/tmp")
    os.chmod(path, 0o1777)  # the fake writes its scratch files here as the run's uid
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _fake_bwrap(folder: str, body: str) -> str:
    """A stand-in for bwrap, run by the system python3 (which any uid may execute)."""
    path = os.path.join(folder, "bwrap")
    with open(path, "w") as fh:
        fh.write(f"#!/usr/bin/python3\n{body}")
    os.chmod(path, 0o755)
    return path


# a bwrap whose namespaces silently failed: it reports success and runs the program on the host
FAKE_NO_NAMESPACES = r'''
import json, os, sys
args = sys.argv[1:]
status = int(args[args.index("--json-status-fd") + 1])
command = args[args.index("--") + 1:]
home = os.path.join(os.path.dirname(sys.argv[0]), f"run-{os.getpid()}")
os.makedirs(home, exist_ok=True)
local = {}
for i, a in enumerate(args):
    if a == "--ro-bind-data":
        path = os.path.join(home, os.path.basename(args[i + 2]))
        with open(path, "wb") as fh:
            fh.write(os.read(int(args[i + 1]), 10 ** 7))
        local[args[i + 2]] = path
command = [local.get(c, home if c == "/work" else c) for c in command]
os.write(status, json.dumps({"child-pid": os.getpid()}).encode() + b"\n")
pid = os.fork()
if pid == 0:
    os.execv(command[0], command)
_, st = os.waitpid(pid, 0)
os.write(status, json.dumps({"exit-code": os.waitstatus_to_exitcode(st)}).encode())
'''


def test_no_bwrap_stops_the_run(fresh_check, monkeypatch):
    monkeypatch.setattr(isolation, "find_bwrap", lambda: None)  # as on a machine without it
    with pytest.raises(SandboxUnavailable, match="'bubblewrap'.*apt-get install bubblewrap"):
        run_python("print(1)", LIMITS)
    with pytest.raises(SandboxUnavailable):
        require_isolation(LIMITS)


def test_a_bwrap_path_that_is_not_there_is_not_used(monkeypatch):
    monkeypatch.setenv(isolation.BWRAP_ENV, "/nonexistent/bwrap")
    assert isolation.find_bwrap() is None


def test_namespaces_that_cannot_be_created_stop_the_run(fresh_check, monkeypatch, public_dir):
    fake = _fake_bwrap(public_dir, "import sys\nsys.stderr.write('bwrap: No permissions to creating new namespace, "
                                 "likely because the kernel does not allow non-privileged user namespaces.\\n')\n"
                                 "sys.exit(1)\n")
    monkeypatch.setenv(isolation.BWRAP_ENV, fake)
    with pytest.raises(SandboxUnavailable, match="'namespaces'.*No permissions to creating new namespace"):
        run_python("print(1)", LIMITS)


def test_namespaces_that_silently_fail_are_caught(fresh_check, monkeypatch, public_dir):
    """A sandbox tool that says it worked but isolated nothing: the probe sees the host's namespaces."""
    monkeypatch.setenv(isolation.BWRAP_ENV, _fake_bwrap(public_dir, FAKE_NO_NAMESPACES))
    with pytest.raises(SandboxUnavailable, match="'userns'.*host's user namespace"):
        run_python("print(1)", LIMITS)


def test_a_uid_drop_that_does_not_happen_is_caught(fresh_check, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("only root drops to a per-run uid")
    monkeypatch.setattr(isolation, "run_uid", lambda: None)  # the drop silently skipped
    with pytest.raises(SandboxUnavailable, match="'unprivileged_uid'.*uid 0"):
        run_python("print(1)", LIMITS)


# --- the command line: one paragraph and exit status 2, never a traceback --------------------------------

NO_NAMESPACES = ("import sys\nsys.stderr.write('bwrap: No permissions to creating new namespace, likely because the "
                 "kernel does not allow non-privileged user namespaces.\\n')\nsys.exit(1)\n")
EXERCISES = ["synth", "exercises", "--kinds", "arithmetic", "--per-kind", "1", "--backend", "openai",
             "--base-url", "http://127.0.0.1:9/v1"]  # no server: the sandbox is checked before any model call


def _explained(result, layer: str) -> str:
    """The command's one paragraph, checked; the traceback is in the log file it names (removed here)."""
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert out.startswith("error: model-written code cannot run isolated here") and f"'{layer}' layer" in out
    for advice in ("To fix:", "outside the container", "user namespaces", "--unsafe-no-isolation"):
        assert advice in out, (advice, out)
    log = out.rsplit("The full error is in ", 1)[1].strip().rstrip(".")
    with open(log) as fh:
        assert "SandboxUnavailable" in fh.read()
    os.unlink(log)
    return out


def _cli(*args):
    from typer.testing import CliRunner

    from assay.pipelines.cli import app

    return CliRunner().invoke(app, [*EXERCISES, *args])


def test_the_cli_explains_namespaces_that_cannot_be_created(fresh_check, monkeypatch, public_dir, tmp_path):
    monkeypatch.setenv(isolation.BWRAP_ENV, _fake_bwrap(public_dir, NO_NAMESPACES))
    out = _explained(_cli("--out", str(tmp_path / "out")), "namespaces")
    assert "No permissions to creating new namespace" in out
    assert not (tmp_path / "out").exists()  # stopped before anything was written


def test_the_cli_explains_a_check_that_cannot_run(fresh_check, monkeypatch, tmp_path):
    """A system call the container's seccomp profile denies, inside the check itself."""
    def denied(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "memfd_create", denied)
    out = _explained(_cli("--out", str(tmp_path / "out")), "probe")
    assert "PermissionError" in out


def test_the_cli_explains_a_sandbox_failure_in_a_beam_worker(monkeypatch, tmp_path):
    """A worker that cannot isolate stops the run; Beam hands the driver a RuntimeError holding its traceback."""
    from assay.pipelines.synth_jobs import generate
    from assay.synth.sandbox.errors import sandbox_failure

    err = SandboxUnavailable("run_limits", "no cgroup for this run (EACCES)", "run as root")
    beam_text = ("Traceback (most recent call last):\n  File \"assay/synth/sandbox/run.py\", line 1, in run_python\n"
                 f"assay.synth.sandbox.errors.SandboxUnavailable: {err} "
                 "[while running 'synth:prepare:map/ParDo(_MapFn)']")
    found = sandbox_failure(RuntimeError(beam_text))
    assert (found.layer, found.detail, found.fix) == (err.layer, err.detail, err.fix)
    assert sandbox_failure(RuntimeError("something else")) is None

    def worker_failed(job, cfg):
        raise RuntimeError(beam_text)

    monkeypatch.setattr(generate, "run_exercises", worker_failed)
    out = _explained(_cli("--out", str(tmp_path / "out"), "--unsafe-no-isolation"), "run_limits")
    assert "no cgroup for this run" in out


def test_in_a_user_namespace_without_nested_ones_the_cli_explains(tmp_path):
    """A rootless container: uid 0 inside a user namespace that may not create user namespaces of its own."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--user", "--map-root-user", "true"],
                                                         capture_output=True).returncode != 0:
        pytest.skip("cannot create a user namespace here")
    command = [sys.executable, "-m", "assay.pipelines.cli", *EXERCISES, "--out", str(tmp_path / "out")]
    script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", *command], cwd=root,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: model-written code cannot run isolated here")
    assert "user namespace" in proc.stderr and "--unsafe-no-isolation" in proc.stderr


def test_the_opt_out_is_explicit_and_recorded():
    unsafe = SandboxLimits(unsafe_no_isolation=True, wall_seconds=5)
    r = run_python("print(6 * 7)", unsafe)
    assert r.ok and r.stdout.strip() == "42", r.stderr
    assert r.isolation[0] == "UNSAFE_no_os_isolation" and "netns" not in r.isolation
    assert require_isolation(unsafe)[0] == "UNSAFE_no_os_isolation"
    assert run_python("print(open('/etc/hostname').read())", unsafe).status == "blocked"  # the tripwire stays


def test_exercise_rows_record_the_isolation():
    cfg = exercises.ExerciseConfig(kinds=["arithmetic"], per_kind=1, limits=LIMITS)
    item = exercises.prepare(exercises.make_specs(cfg)[0], cfg)
    assert "netns" in item.labels["sandbox_isolation"] and "seccomp" in item.labels["sandbox_isolation"]
    unsafe = exercises.ExerciseConfig(kinds=["arithmetic"], per_kind=1,
                                      limits=SandboxLimits(unsafe_no_isolation=True))
    item = exercises.prepare(exercises.make_specs(unsafe)[0], unsafe)
    assert item.labels["sandbox_isolation"].startswith("UNSAFE_no_os_isolation")


def test_the_exercises_command_stops_before_generating_when_it_cannot_isolate(fresh_check, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from assay.pipelines.cli import app
    from assay.synth.tiny import tiny_model_dir

    monkeypatch.setattr(isolation, "find_bwrap", lambda: None)
    out = tmp_path / "ex"
    res = CliRunner().invoke(app, ["synth", "exercises", "--out", str(out), "--model", tiny_model_dir(),
                                   "--kinds", "arithmetic", "--per-kind", "1"])
    assert "apt-get install bubblewrap" in _explained(res, "bubblewrap")
    assert not out.exists() or not any(out.rglob("*.parquet"))  # nothing generated, nothing written
    res = CliRunner().invoke(app, ["synth", "exercises", "--help"])
    assert "--unsafe-no-isolation" in res.output and "DANGEROUS" in res.output
