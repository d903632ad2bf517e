"""The sandbox: escape attempts fail safely and are recorded; exercise answers come from sandboxed runs."""
import os
import pathlib
import socket
import tempfile
import threading
import uuid

import pytest

from assay.synth import exercises
from assay.synth.config import SandboxLimits
from assay.synth.sandbox import run_python

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=3.0, file_bytes=200_000, output_bytes=20_000)


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
                conn, _ = srv.accept()
                accepted.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join()
    srv.close()


def test_plain_program_runs_and_may_use_its_own_directory():
    r = run_python("from fractions import Fraction\nopen('note.txt', 'w').write('hi')\n"
                   "print(Fraction(1, 3) + Fraction(1, 6), open('note.txt').read())", LIMITS)
    assert r.ok, r.stderr
    assert r.stdout.split() == ["1/2", "hi"]


@pytest.mark.parametrize("code", [
    "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.send(b'x')",
    "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
])
def test_network_is_refused_and_nothing_reaches_the_host(listener, code):
    port, accepted = listener
    r = run_python(code.format(port=port), LIMITS)
    assert not r.ok and r.status == "blocked", r.stderr
    assert "socket" in r.stderr or "urllib" in r.stderr
    assert accepted == []


@pytest.mark.parametrize("tripwire", [True, False], ids=["tripwire", "os-only"])
def test_writes_outside_the_work_directory_never_reach_the_host(tripwire):
    """With the audit hook they are refused by name; without it the OS view has nowhere to write them."""
    target = pathlib.Path("/var/tmp") / f"assay-escape-{uuid.uuid4().hex}"  # writable on the host, not in a run
    for code in (f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.makedirs({str(target)!r})",
                 "open('/usr/escaped.txt', 'w').write('x')",
                 "open('../escaped.txt', 'w').write('x')",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
                 f"import sqlite3\nsqlite3.connect({str(target)!r}).execute('create table t(x)')",
                 f"import os\nos.mkfifo({str(target)!r})"):
        r = run_python(code, LIMITS, tripwire=tripwire)
        assert not r.ok, (code, r.stdout)
        if tripwire and "mkfifo" not in code:  # mkfifo raises no audit event: the OS refuses it
            assert r.status == "blocked", (code, r.stderr)
        assert not target.exists()
    assert not os.path.exists("/usr/escaped.txt")


def test_reading_outside_is_refused():
    r = run_python("print(open('/etc/hostname').read())", LIMITS)
    assert r.status == "blocked" and r.stdout == ""
    r = run_python("import os\nprint(os.listdir('/root'))", LIMITS)
    assert r.status == "blocked" and r.stdout == ""


@pytest.mark.parametrize("code", [
    "import os\nwhile True:\n    os.fork()",
    "import subprocess\nsubprocess.run(['sh', '-c', 'echo hi'])",
    "import os\nos.system('echo hi')",
    "import multiprocessing\nmultiprocessing.Process(target=print).start()",
    "import ctypes\nctypes.CDLL(None).fork()",
])
def test_process_creation_and_fork_bombs_fail_safely(code):
    r = run_python(code, LIMITS)
    assert r.status == "blocked", r.stderr
    assert "hi" not in r.stdout


def test_infinite_loop_hits_the_cpu_limit():
    r = run_python("while True:\n    pass", LIMITS)
    assert r.status == "cpu_limit"
    assert r.seconds < LIMITS.wall_seconds + 1


def test_sleeping_forever_hits_the_wall_clock_timeout():
    r = run_python("import time\ntime.sleep(60)", LIMITS)
    assert r.status == "timeout"
    assert r.seconds < LIMITS.wall_seconds + 2


def test_huge_output_is_capped():
    r = run_python("while True:\n    print('x' * 1000)", LIMITS)
    assert r.status == "output_limit"
    assert len(r.stdout) <= LIMITS.output_bytes


def test_memory_limit():
    r = run_python("blob = bytearray(4 * 1024 ** 3)", LIMITS)
    assert r.status == "memory_limit"


def test_nothing_of_a_run_is_left_on_the_host(monkeypatch):
    folder = tempfile.mkdtemp(prefix="assay-test-left-", dir="/var/tmp")  # one the run's uid can pass through
    os.chmod(folder, 0o755)
    monkeypatch.setattr(tempfile, "tempdir", folder)
    try:
        r = run_python("open('/work/a', 'w').write('x')\nopen('/tmp/b', 'w').write('y')\nimport os\n"
                       "print(os.getcwd())", LIMITS)
        assert r.ok and r.stdout.strip() == "/work", r.stderr
        assert os.listdir(folder) == []
    finally:
        os.rmdir(folder)


# --- exercises: answers computed in the sandbox ------------------------------------------------------

def test_exercise_answers_come_from_sandboxed_programs():
    cfg = exercises.ExerciseConfig(kinds=["arithmetic", "algebra", "word_problem", "code"], per_kind=2, seed=3,
                                   limits=LIMITS)
    specs = exercises.make_specs(cfg)
    assert len(specs) == 8 and len({s.id for s in specs}) == 8
    assert [s.problem for s in specs] == [s.problem for s in exercises.make_specs(cfg)]  # a seed names them
    for spec in specs:
        item = exercises.prepare(spec, cfg)
        assert not isinstance(item, exercises.Rejection), item
        answer = item.labels["answer"]
        if spec.kind == "algebra":  # the root satisfies the equation the problem states
            a, b, c = map(int, __import__("re").findall(r"-?\d+", spec.problem.replace("- ", "-")))
            x = exercises.Fraction(answer)
            assert a * x + b == c
        if spec.kind != "code":
            assert answer in item.messages[-1]["content"]  # the explain prompt carries the verified answer


def test_a_broken_answer_program_goes_to_the_ledger():
    cfg = exercises.ExerciseConfig(kinds=["arithmetic"], per_kind=1, limits=LIMITS)
    spec = exercises.make_specs(cfg)[0]
    for program, reason in (("print(1/0)", "sandbox_error"), ("while True: pass", "sandbox_cpu_limit"),
                            ("x = 1", "no_answer")):
        spec.program = program
        rej = exercises.prepare(spec, cfg)
        assert isinstance(rej, exercises.Rejection)
        assert rej.reason == reason and rej.stage == "synth:exercise"


def test_model_written_code_is_verified_against_the_reference():
    inputs = [[0], [3], [10]]
    want = run_python(exercises.code_harness("def sum_of_squares(n):\n    return sum(i*i for i in range(n+1))",
                                             "sum_of_squares", inputs), LIMITS).stdout
    good = "def sum_of_squares(n):\n    return n * (n + 1) * (2 * n + 1) // 6"
    wrong = "def sum_of_squares(n):\n    return n * n"
    hostile = "import os\ndef sum_of_squares(n):\n    os.system('touch /tmp/pwned')\n    return 0"
    assert exercises.check_code(good, "sum_of_squares", inputs, want, LIMITS) == (True, "", "")
    ok, reason, detail = exercises.check_code(wrong, "sum_of_squares", inputs, want, LIMITS)
    assert not ok and reason == "tests_failed" and "expected [0, 14, 385]" in detail
    ok, reason, _ = exercises.check_code(hostile, "sum_of_squares", inputs, want, LIMITS)
    assert not ok and reason == "sandbox_blocked"


def test_final_answer_parsing():
    assert exercises.final_answer("so x = 3\nAnswer: 7/2") == exercises.Fraction(7, 2)
    assert exercises.final_answer("Answer: **-12**.") == -12
    assert exercises.final_answer("Answer: $1,400") == 1400
    assert exercises.final_answer("I think it is five") is None
    assert exercises.extract_code("Here:\n```python\ndef f(x):\n    return x\n```\nDone") == "def f(x):\n    return x\n"


def test_a_program_that_does_not_compile_is_an_error_not_a_set_up_failure():
    r = run_python("x = '\nprint(x)", LIMITS)
    assert r.status == "error" and "SyntaxError" in r.stderr
