"""The wing of assay/synth/ that runs untrusted Python under OS isolation (model-written solutions, answer programs).

run.py runs one program (`run_python`) and says how it ended; isolation.py builds the bubblewrap command and
checks every layer before the first run, with seccomp.py (the syscall filter), run_limits.py and run_mounts.py
(limits of a whole run: cgroup or rlimits, capped tmpfs), limits_check.py (the probe of those limits),
child_setup.py (what each run starts from), boot.py (the first code inside the sandbox: the audit-hook
tripwire), wait.py (output read with a cap, the run ended at its deadline) and errors.py (SandboxUnavailable).
docs/security.md describes the layers.
"""
from assay.synth.sandbox.errors import SandboxUnavailable
from assay.synth.sandbox.run import SandboxResult, require_isolation, run_python

__all__ = ["SandboxResult", "SandboxUnavailable", "require_isolation", "run_python"]
