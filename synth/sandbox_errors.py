"""The sandbox's one error: raised, never caught inside synth/, wherever a layer of isolation or a limit of
the run cannot be applied, so that nothing runs without it."""
from __future__ import annotations


class SandboxUnavailable(RuntimeError):
    """A layer of OS isolation cannot be applied here: no sandboxed program may run."""

    def __init__(self, layer: str, detail: str, fix: str):
        self.layer, self.detail, self.fix = layer, detail, fix
        super().__init__(f"sandbox isolation layer '{layer}' cannot be applied: {detail}. To fix: {fix}. "
                         "(Only on a machine that cannot isolate, and knowing that model-written code then runs "
                         "with this user's rights: set unsafe_no_isolation in [sandbox] / pass "
                         "--unsafe-no-isolation; every affected row records it.)")
