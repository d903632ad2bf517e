"""The writable file systems of a sandboxed run: /work, /tmp and /dev/shm, each a tmpfs capped in bytes AND in
files (inodes).

bwrap's `--tmpfs` takes a size but no inode count, and a tmpfs without `nr_inodes` allows about one file per
two pages of the host's RAM: half a million empty files in seconds, each an inode and a dentry of kernel
memory that no size cap sees. So the child of `run_python` mounts them itself, between fork and exec of
bwrap, in a mount namespace of its own (never the host's: the host sees no mount, and the tmpfs vanish with
the run's last process), on folders of the run's host directory that bwrap then binds in:
* as root, before dropping to the run's uid: `unshare(CLONE_NEWNS)`, tmpfs owned by that uid;
* unprivileged: `unshare(CLONE_NEWUSER | CLONE_NEWNS)` mapping our own uid, which any user may do wherever
  bwrap itself works (bwrap then nests its user namespace inside this one).
"""
from __future__ import annotations

import ctypes
import os
import tempfile

from assay.synth.config import SandboxLimits

FOLDERS = ("work", "tmp", "shm")  # in the run's host directory; bound at /work, /tmp, /dev/shm
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000

_libc = ctypes.CDLL(None, use_errno=True)  # loaded now: the child only calls it
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]


def _traversable(path: str) -> bool:
    """True when any user may pass through `path` and every folder above it."""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def run_folder(prefix: str = "assay-sandbox-") -> str:
    """A fresh host folder for a run's mount points. bwrap, running as the run's uid, finds them by path, so
    every folder above must be traversable by anyone: the temp folder if it is, else /tmp."""
    base = tempfile.gettempdir()
    if os.geteuid() == 0 and not _traversable(base):
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def prepare(root: str) -> dict[str, str]:
    """The mount points under the run's host directory (made traversable, not listable, for the run's uid)."""
    os.chmod(root, 0o711)
    paths = {}
    for name in FOLDERS:
        paths[name] = os.path.join(root, name)
        os.mkdir(paths[name], 0o700)
    return paths


def sizes(limits: SandboxLimits) -> dict[str, int]:
    return {"work": limits.disk_bytes, "tmp": limits.disk_bytes, "shm": limits.shm_bytes}


def nproc_per_user_namespace() -> bool:
    """Since Linux 5.14 RLIMIT_NPROC is counted per user namespace: an unprivileged run, whose processes live
    in the user namespace mount_private makes, is counted alone, not with the caller's processes."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def mount_private(root: str, limits: SandboxLimits, uid: int | None, caller: tuple[int, int]) -> None:
    """In the child, before the uid drop: a private mount namespace with the run's three capped tmpfs.
    `uid` is the run's uid (as root) or None (unprivileged: `caller` is our (uid, gid), mapped to itself)."""
    if uid is None:
        _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{caller[0]} {caller[0]} 1")
        _write("/proc/self/gid_map", f"{caller[1]} {caller[1]} 1")
        owner = ""
    else:
        _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        owner = f",uid={uid},gid={uid}"
    # nothing mounted here may propagate back to the host's namespace
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    for name, size in sizes(limits).items():
        options = f"size={size},nr_inodes={limits.max_files},mode=0700{owner}".encode()
        _check(_libc.mount(b"tmpfs", os.path.join(root, name).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options),
               f"mount tmpfs ({options.decode()}) on {os.path.join(root, name)}")

