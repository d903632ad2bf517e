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
