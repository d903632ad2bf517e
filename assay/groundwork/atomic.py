"""Files and folders that appear only when complete: written under a temporary name beside their final place,
then renamed over it. A reader never sees half a file, and a killed run leaves the previous version (or
nothing), never something that looks finished.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path` for any writer (torch.save, savefig, a library's save); on
    success it replaces `path`, on error it is removed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_bytes_atomic(data: bytes, path: str) -> None:
    """`data` as `path`, synced to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(text: str, path: str) -> None:
    write_bytes_atomic(text.encode("utf-8"), path)


def write_json_atomic(data: Any, path: str, **dump_kwargs: Any) -> None:
    """`data` as indented JSON (keys sorted unless `sort_keys=False`; unknown types as str)."""
    options = {"indent": 2, "sort_keys": True, "default": str, **dump_kwargs}
    write_text_atomic(json.dumps(data, **options), path)


def replace_folder(work: str, final: str) -> None:
    """Move the finished folder `work` to `final`, replacing what was there: the old folder is renamed aside
    first and removed last, so `final` is at every moment the old complete folder or the new one."""
    old = None
    if os.path.lexists(final):
        old = os.path.join(os.path.dirname(os.path.abspath(final)),
                           f".{os.path.basename(final)}.old-{uuid.uuid4().hex}")
        os.rename(final, old)
    os.rename(work, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def check_replaceable(folder: str, is_ours: Callable[[str], bool], what: str) -> None:
    """Before a job replaces what is in its output folder: the folder must be absent, empty, or recognised by
    `is_ours` as an earlier output of the job. Anything else is someone's own folder (a project, a home) that an
    `--output` typo or a received config would have overwritten: FileExistsError saying what to do."""
    if os.path.isfile(folder) or (os.path.isdir(folder) and os.listdir(folder) and not is_ours(folder)):
        raise FileExistsError(f"{folder} exists and is not {what}; nothing was written: choose another --output "
                              "(an absent or empty folder), or remove it yourself if nothing in it is needed")


@contextlib.contextmanager
def atomic_folder(final: str) -> Iterator[str]:
    """Yields an empty folder beside `final` to build in; on success it replaces `final` (replace_folder),
    on error it is removed and `final` is untouched."""
    final = os.path.abspath(final)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    work = os.path.join(parent, f".{os.path.basename(final)}.tmp-{uuid.uuid4().hex}")
    os.makedirs(work)
    try:
        yield work
        replace_folder(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


#: the one name of a job's work-in-progress folder inside its output (shard jobs: one sub-folder per run; the
#: mix: inside its temporary folder). Whatever is in it was never published and may be removed.
STAGING = ".staging"
#: the lock file of an output folder (output_lock)
LOCK_FILE = ".lock"


def staging_folder(root: str, run_id: str = "") -> str:
    """Where a job stages its work under `root`: ROOT/.staging[/RUN_ID]."""
    return os.path.join(root, STAGING, run_id) if run_id else os.path.join(root, STAGING)


class OutputBusy(FileExistsError):
    """Another live process holds the output folder's lock."""


@contextlib.contextmanager
def output_lock(folder: str, say: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Hold FOLDER/.lock for the life of the block: a second run into the same folder gets OutputBusy naming the
    holder's pid. The lock is an flock on an open file, so the kernel drops it when its holder dies (even by
    SIGKILL); the file keeps the pid of the last holder, and a lock left by a process that is gone is taken over
    with a message through `say`. Yields what the lock file held before (empty when it was free and clean)."""
    import fcntl
    import socket
    import time

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            previous = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            previous = {}
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = previous.get("pid", "unknown")
            since = previous.get("started_utc", "an unknown time")
            raise OutputBusy(f"{folder} is being written by another run (pid {pid} on {previous.get('host', '?')}, "
                             f"started {since}); nothing was written: wait for it to finish, stop it (kill {pid}), "
                             "or choose another --output") from None
        try:
            previous = json.loads(os.pread(fd, 4096, 0) or b"{}")  # as the last holder left it
        except ValueError:
            previous = {}
        if previous.get("pid") and say:
            say(f"took over the lock of {folder} from run pid {previous['pid']} (started "
                f"{previous.get('started_utc', '?')}), which ended without finishing")
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        try:
            yield previous
        finally:
            os.ftruncate(fd, 0)  # a clean release: the next run takes the lock without a message
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def switch_link(link: str, target: str) -> None:
    """Point the symbolic link `link` at `target` in one step (a new link renamed over the old one): a reader
    that follows `link` finds the old target or the new one, never neither."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(link)), f".{os.path.basename(link)}.tmp-{uuid.uuid4().hex}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
