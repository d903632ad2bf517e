"""A seccomp deny-list for sandboxed programs, as the raw BPF that `bwrap --seccomp FD` loads.

The namespaces already take away the host; this filter takes away the kernel interfaces an exercise
program never needs and that kernel exploits and sandbox escapes start from: sockets (on top of the empty
network namespace), ptrace and cross-process memory, mounts and namespaces, keyrings, BPF, perf,
userfaultfd, io_uring, module and kexec loading, device nodes and fifos, and memfd_create (a memfd is
memory outside every size cap: fallocate with FALLOC_FL_KEEP_SIZE grows it past RLIMIT_FSIZE, and without
a cgroup nothing else counts it). Denied calls fail with EPERM;
a call made through another architecture's ABI (x32, or a foreign arch) kills the process, so the table
cannot be sidestepped. Written by hand because libseccomp's Python binding is not on PyPI.
"""
from __future__ import annotations

import errno
import platform
import struct

# syscall numbers by machine (uname -m): x86_64 from arch/x86/entry/syscalls/syscall_64.tbl,
# aarch64 from the generic table (include/uapi/asm-generic/unistd.h)
DENIED = {
    "x86_64": {
        "socket": 41, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250,
        "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "personality": 135, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
        "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "quotactl": 179,
        "fanotify_init": 300, "mknod": 133, "mknodat": 259, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "memfd_create": 319,
    },
    "aarch64": {
        "socket": 198, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "keyctl": 219,
        "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "personality": 92, "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142,
        "sethostname": 161, "setdomainname": 162, "quotactl": 60, "fanotify_init": 262, "mknodat": 33,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "memfd_create": 279,
    },
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW, _RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_RET_EPERM = 0x00050000 | errno.EPERM
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in DENIED


def syscall_number(name: str, machine: str | None = None) -> int:
    return DENIED[machine or platform.machine()][name]


def deny_filter(machine: str | None = None) -> bytes:
    """The filter program (struct sock_filter[]) for this machine; KeyError when there is no table for it."""
    machine = machine or platform.machine()
    numbers = sorted(set(DENIED[machine].values()))
    prog: list[tuple[int, int, int, int]] = []
    # layout: [0] ld arch, [1] arch check, [2] ld nr, ([3] x32 check), the nr checks, allow, deny, kill
    head = 4 if machine == "x86_64" else 3
    allow = head + len(numbers)
    deny, kill = allow + 1, allow + 2

    def jump(at: int, to: int) -> int:
        return to - at - 1

    prog.append((_LD_W_ABS, 0, 0, _ARCH))
    prog.append((_JEQ_K, 0, jump(1, kill), AUDIT_ARCH[machine]))
    prog.append((_LD_W_ABS, 0, 0, _NR))
    if machine == "x86_64":
        prog.append((_JGE_K, jump(3, kill), 0, X32_SYSCALL_BIT))
    for i, nr in enumerate(numbers):
        at = head + i
        prog.append((_JEQ_K, jump(at, deny), 0, nr))
    prog += [(_RET_K, 0, 0, _RET_ALLOW), (_RET_K, 0, 0, _RET_EPERM), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)
