"""Test set-up shared by every test module.

TRITON_INTERPRET must be set before any @triton.jit function is defined, i.e. before assay/kernels/ is imported:
it makes the Triton kernels run (slowly, exactly) on the CPU.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

try:
    import torch  # noqa: E402

    HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover - torch is a hard dependency
    HAS_CUDA = False


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; run on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


#: test modules that must share one xdist process (`make test` runs two): they start code sandboxes, which use the
#: host's cgroup tree and process table, and one of them runs a fork bomb; run side by side, a sandbox in one
#: module failed to start while another module's ran
ONE_PROCESS = {f"tests/{name}.py": "sandboxes" for name in (
    "test_synth_checker", "test_synth_generate", "test_synth_sandbox", "test_synth_sandbox_isolation",
    "test_synth_sandbox_limits")}


def pytest_xdist_make_scheduler(config, log):
    """Under `-n`: whole modules per process (as --dist loadfile), the sandbox modules all in one."""
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndSandboxes(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return ONE_PROCESS.get(module, module)

    return ModulesAndSandboxes(config, log)
