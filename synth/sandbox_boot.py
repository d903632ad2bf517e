"""Runs inside the sandbox child (`python -I -S sandbox_boot.py WORKDIR PROGRAM`), before the program.

It installs an audit hook (PEP 578; a hook cannot be removed once added) that refuses, with
SandboxViolation, every attempt to: open a socket or resolve a name; start a process (fork, exec, spawn,
subprocess, os.system); load ctypes or _posixsubprocess; write, create, rename, delete or chmod a path
outside WORKDIR; read or list a path outside WORKDIR and Python's own standard library. Then it runs the
program with WORKDIR as the current directory. This file only uses the standard library.
"""
import os
import sys
import sysconfig

WORK = os.path.realpath(sys.argv[1])
PROGRAM = sys.argv[2]
READ_ROOTS = tuple({WORK, *(os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib"))})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
DEVICES = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero")
BLOCKED_EVENTS = (
    "socket.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "ctypes.", "os.kill", "os.killpg", "os.setuid", "os.setgid", "os.chroot",
    "pty.spawn", "webbrowser.open", "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
)
BLOCKED_MODULES = {"_posixsubprocess", "ctypes", "_ctypes"}
PATH_WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
                     "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
PATH_READ_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "os.walk"}


class SandboxViolation(PermissionError):
    pass


def _inside(path, roots):
    if isinstance(path, int):  # an already-open descriptor
        return True
    try:
        full = os.path.realpath(os.path.join(WORK, os.fsdecode(path)))
    except (TypeError, ValueError):
        return False
    return any(full == root or full.startswith(root + os.sep) for root in roots)


def _hook(event, args):
    if event == "import":
        if args[0].split(".")[0] in BLOCKED_MODULES:
            raise SandboxViolation(f"sandbox: import of {args[0]} is not allowed")
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        if path in DEVICES:
            return
        if not _inside(path, (WORK,) if writing else READ_ROOTS):
            raise SandboxViolation(f"sandbox: {'writing' if writing else 'reading'} {path!r} outside the sandbox "
                                   "directory is not allowed")
        return
    if event in PATH_WRITE_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path, (WORK,)):
                raise SandboxViolation(f"sandbox: {event} on {path!r} outside the sandbox directory is not allowed")
        return
    if event in PATH_READ_EVENTS:
        if args and isinstance(args[0], (str, bytes, os.PathLike)) and not _inside(args[0], READ_ROOTS):
            raise SandboxViolation(f"sandbox: {event} of {args[0]!r} is not allowed")
        return
    if event.startswith(BLOCKED_EVENTS):
        raise SandboxViolation(f"sandbox: {event} is not allowed (no network, no processes)")


def main():
    with open(PROGRAM, encoding="utf-8") as fh:
        source = fh.read()
    code = compile(source, "program.py", "exec")
    os.chdir(WORK)
    sys.path[:] = [p for p in sys.path if _inside(p, READ_ROOTS)]
    sys.addaudithook(_hook)
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    main()
