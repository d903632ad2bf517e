"""The sandbox's one error: raised, never caught inside assay/synth/, wherever a layer of isolation or a limit of
the run cannot be applied, so that nothing runs without it. `sandbox_failure` finds it again after it crossed a
Beam worker (which hands the driver a RuntimeError holding the worker's traceback as text), and `explain` says it
to a person in one paragraph: what failed, which layer, what to do."""
from __future__ import annotations

import os
import re

OPT_OUT = "--unsafe-no-isolation"
_MESSAGE = re.compile(r"SandboxUnavailable: sandbox isolation layer '([^']+)' cannot be applied: (.*?)\. To fix: "
                      r"(.*?)\. \(Only on a machine", re.S)


class SandboxUnavailable(RuntimeError):
    """A layer of OS isolation cannot be applied here: no sandboxed program may run."""

    def __init__(self, layer: str, detail: str, fix: str):
        self.layer, self.detail, self.fix = layer, detail, fix
        super().__init__(f"sandbox isolation layer '{layer}' cannot be applied: {detail}. To fix: {fix}. "
                         "(Only on a machine that cannot isolate, and knowing that model-written code then runs "
                         f"with this user's rights: pass {OPT_OUT} (SandboxLimits(unsafe_no_isolation=True)); "
                         "every affected row records it.)")

    def __reduce__(self):  # so that it survives pickling between processes
        return type(self), (self.layer, self.detail, self.fix)


def sandbox_failure(exc: BaseException) -> SandboxUnavailable | None:
    """The SandboxUnavailable behind `exc`: itself, its cause or context, or one a Beam worker raised and the
    runner re-raised as text."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SandboxUnavailable):
            return exc
        found = _MESSAGE.search(str(exc))
        if found:
            return SandboxUnavailable(*found.groups())
        exc = exc.__cause__ or exc.__context__
    return None


def container_evidence() -> str:
    """Why this process looks like it runs in a container ('' when it does not)."""
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(marker):
            return marker
    if os.environ.get("container"):
        return f"container={os.environ['container']}"
    try:
        with open("/proc/self/uid_map") as fh:
            if fh.read().split() != ["0", "0", "4294967295"]:
                return "a user namespace (/proc/self/uid_map)"
    except OSError:
        pass
    return ""


def explain(err: SandboxUnavailable, log: str | None = None) -> str:
    """One paragraph for a person: what failed, which layer, what to do."""
    detail = " ".join(err.detail.split()).rstrip(".")
    evidence = container_evidence()
    where = f"This looks like a container ({evidence}): " if evidence else "In a container: "
    return (f"model-written code cannot run isolated here, so nothing was generated. The sandbox's '{err.layer}' "
            f"layer cannot be applied: {detail}. To fix: {' '.join(err.fix.split())}. {where}run assay outside "
            "the container, or let the container create user namespaces (Docker: --security-opt "
            "seccomp=unconfined --security-opt apparmor=unconfined; rootless Docker or Podman: user namespaces "
            f"enabled on the host). Only on a machine that cannot isolate, and knowing that model-written code "
            f"then runs with your user's rights, pass {OPT_OUT}; every row it writes records that."
            + (f" The full error is in {log}." if log else ""))
