"""Model files and folders (a language-ID model, a classifier's folder) named by local or remote paths.

Workers of a remote runner (Dataflow, Flink, Spark on a cluster) do not see the machine that submitted the job.
`stage` uploads a local model file or folder to a remote folder (the job's --temp_location), under a name
made from its content hash, so every run of the same model reuses one copy; `local_path` turns such a remote
path back into a local one on the worker, copying it once per process into a local cache, before the model is
loaded. Both go through Beam's FileSystems, so gs://, s3:// and any other filesystem Beam knows work alike.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading

from assay.groundwork.atomic import atomic_folder

STAGED_DIR = "assay-models"
_LOCAL: dict[str, str] = {}  # remote path -> local path, for this process
_LOCK = threading.Lock()
_CACHE: list[str] = []  # this process's private download folder (mode 0700), made on first use


def is_remote(path: str) -> bool:
    return "://" in path


def _raw():
    """Bytes as they are: Beam would otherwise (un)compress by file extension."""
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED


def content_hash(path: str) -> str:
    """sha256 over a file's bytes, or over a folder's relative file names and bytes (sorted)."""
    h = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for file in files:
        h.update(os.path.relpath(file, path).encode() + b"\0" if file != path else b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def stage(path: str, remote_root: str) -> str:
    """Upload the local model file or folder `path` under `remote_root`/assay-models/<hash>/<name>; returns the
    remote path (the same for the same content, so a later run uploads nothing new). A remote `path` is
    returned as it is."""
    from apache_beam.io.filesystems import FileSystems

    if is_remote(path):
        return path
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {path!r} not found: it must exist on the machine that submits the job")
    name = os.path.basename(os.path.normpath(path))
    target = f"{remote_root.rstrip('/')}/{STAGED_DIR}/{content_hash(path)[:20]}/{name}"
    files = [("", path)] if os.path.isfile(path) else sorted(
        (os.path.relpath(os.path.join(root, name), path), os.path.join(root, name))
        for root, _, names in os.walk(path) for name in names)
    for rel, local in files:
        dest = f"{target}/{rel}" if rel else target
        if FileSystems.exists(dest):
            continue
        with open(local, "rb") as src, FileSystems.create(dest, compression_type=_raw()) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    with _LOCK:
        _LOCAL[target] = os.path.abspath(path)  # this process already has it
    return target


def local_path(path: str) -> str:
    """A local path for the model file or folder `path`: itself when local, else a copy downloaded once per
    process into a private folder of this process (no other user can place a file there first)."""
    if not is_remote(path):
        return path
    with _LOCK:
        if path in _LOCAL:
            return _LOCAL[path]
        from apache_beam.io.filesystems import FileSystems

        if not _CACHE:
            _CACHE.append(tempfile.mkdtemp(prefix=f"{STAGED_DIR}-"))
        cache = os.path.join(_CACHE[0], hashlib.sha256(path.encode()).hexdigest()[:20])
        name = path.rstrip("/").rsplit("/", 1)[-1]
        local = os.path.join(cache, name)
        entries = _remote_files(path)
        if not entries:
            raise FileNotFoundError(f"model {path!r} not found on its filesystem")
        with atomic_folder(cache) as work:  # complete or absent
            for remote in entries:
                rel = remote[len(path.rstrip("/")):].lstrip("/")
                dest = os.path.join(work, name, rel) if rel else os.path.join(work, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with FileSystems.open(remote, compression_type=_raw()) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        _LOCAL[path] = local
        return local


def _remote_files(path: str) -> list[str]:
    """The file `path`, or the files under the folder `path`."""
    from apache_beam.io.filesystems import FileSystems

    found = []
    for pattern in (path.rstrip("/"), f"{path.rstrip('/')}/**"):
        try:
            found = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        except Exception:  # a filesystem that refuses a pattern matching nothing
            found = []
        if found and pattern == path.rstrip("/") and found[0].rstrip("/") != pattern:
            found = []  # a folder: list its files next
        if found:
            return sorted(found)
    return []
