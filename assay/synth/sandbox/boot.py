"""Runs inside the sandbox child (`python -I -S boot.py WORKDIR PROGRAM tripwire|no-tripwire
STARTED_FD [ARGS]`): it writes one byte to STARTED_FD as soon as it runs (the sandbox is set up).

The OS does the isolating (assay/synth/sandbox/isolation.py). This file adds a second tripwire, so that a plain attempt
fails with a readable SandboxViolation instead of an obscure OS error: an audit hook (PEP 578; it cannot be
removed once added) that refuses sockets, process creation, ctypes, frame and gc hook-frame introspection and
tracing, and file writes outside WORKDIR and TMPDIR or reads outside those and the standard library. Its state lives in
the hook's
closure, not in module globals, and the program runs in a fresh `__main__` module, so it cannot switch the
hook off by patching this file's names. This file only uses the standard library.
"""
import os
import sys


def _install(write_roots, read_roots):
    """Add the audit hook; everything it consults is local to this call."""
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    devices = frozenset(("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"))
    blocked_events = (
        "socket.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
        "ctypes.", "os.kill", "os.killpg", "os.setuid", "os.setgid", "os.chroot", "pty.spawn", "webbrowser.open",
        "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect", "gc.get_",
        "sys._current_frames", "sys._current_exceptions", "sys.setprofile", "sys.settrace", "cpython.", "mmap.__new__",
    )
    blocked_modules = frozenset(("_posixsubprocess", "ctypes", "_ctypes", "_testcapi", "_testinternalcapi",
                                 "_testbuffer", "_testmultiphase", "_xxsubinterpreters", "_xxtestfuzz",
                                 "_posixshmem", "_multiprocessing", "resource", "fcntl", "termios", "mmap"))
    # a frame of the hook itself could only come from a traceback or a suspended generator (sys._getframe
    # is allowed: namedtuple needs it, and it only walks the program's own frames)
    frame_attrs = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame"))
    write_events = frozenset(("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
                              "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
                              "sqlite3.connect", "os.chdir"))
    read_events = frozenset(("os.listdir", "os.scandir", "glob.glob", "os.walk"))
    realpath, join, fsdecode, getcwd = os.path.realpath, os.path.join, os.fsdecode, os.getcwd
    sep = os.sep

    class SandboxViolation(PermissionError):
        pass

    def inside(path, roots):
        if isinstance(path, int):  # an already-open descriptor
            return True
        try:
            full = realpath(join(getcwd(), fsdecode(path)))  # relative to the real cwd, whatever it is now
        except (TypeError, ValueError, OSError):
            return False
        return any(full == root or full.startswith(root + sep) for root in roots)

    def hook(event, args):
        if event == "import":
            if args[0].split(".")[0] in blocked_modules:
                raise SandboxViolation(f"sandbox: import of {args[0]} is not allowed")
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
            if path in devices or path is None:
                return
            if not inside(path, write_roots if writing else read_roots):
                raise SandboxViolation(f"sandbox: {'writing' if writing else 'reading'} {path!r} outside the "
                                       "sandbox directory is not allowed")
            return
        if event in ("object.__getattr__", "object.__setattr__", "object.__delattr__"):
            if len(args) > 1 and (args[1] in frame_attrs or (event != "object.__getattr__" and args[1] == "__code__")):
                raise SandboxViolation(f"sandbox: access to {args[1]} is not allowed")
            return
        if event in write_events:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and path != ":memory:" and not inside(path, write_roots):
                    raise SandboxViolation(f"sandbox: {event} on {path!r} outside the sandbox directory is not allowed")
            return
        if event in read_events:
            if args and isinstance(args[0], (str, bytes, os.PathLike)) and not inside(args[0], read_roots):
                raise SandboxViolation(f"sandbox: {event} of {args[0]!r} is not allowed")
            return
        if event.startswith(blocked_events):
            raise SandboxViolation(f"sandbox: {event} is not allowed (no network, no processes, no introspection)")

    sys.addaudithook(hook)
    for name in ("settrace", "setprofile"):  # a trace function sees every frame, the hook's included
        delattr(sys, name)


def main():
    import sysconfig
    import types

    work, program, mode = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "tripwire"
    started = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    if started >= 0:  # tell the parent the sandbox is set up: from here on, any failure is the program's
        os.write(started, b"1")
        os.close(started)
    with open(program, encoding="utf-8") as fh:
        source = fh.read()
    code = compile(source, "program.py", "exec")
    os.chdir(work)
    write_roots = tuple({work, os.path.realpath(os.environ.get("TMPDIR") or work)})  # both private to the run
    read_roots = tuple({*write_roots, *(os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib"))})
    sys.path[:] = [p for p in sys.path if any(p == r or p.startswith(r + os.sep) for r in read_roots)]
    sys.argv = ["program.py", *sys.argv[5:]]
    module = types.ModuleType("__main__")
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module  # the program cannot reach this file's namespace through __main__
    if mode == "tripwire":
        _install(write_roots, read_roots)
    exec(code, module.__dict__)


if __name__ == "__main__":
    main()
