"""assay installs under one import name, so it lives beside any other library: no top-level `kernels`,
`trainer` or `pipelines` of ours shadows a distribution of the same name (the Hub's `kernels`, which
transformers >= 5.25 imports, is the case that used to break)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("groundwork", "kernels", "curation", "classifiers", "synth", "trainer", "pipelines")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run in a folder outside the checkout, so only what is installed is importable."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_checkout_has_one_package_at_the_top():
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert tops == {"assay"}, f"only assay/ may be a package at the top of the repository, found {sorted(tops)}"
    assert {p.name for p in (ROOT / "assay").iterdir() if (p / "__init__.py").is_file()} == set(PACKAGES)


def test_only_assay_is_importable_once_installed(tmp_path):
    code = ("import importlib, importlib.util\n"
            f"for name in {PACKAGES!r}:\n"
            "    importlib.import_module('assay.' + name)\n"
            "    spec = importlib.util.find_spec(name)\n"
            "    if spec is not None and 'site-packages' not in str(spec.origin):\n"
            "        raise SystemExit(f'{name} is importable at the top level from {spec.origin}')\n"
            "print('ok')\n")
    res = _python(code, tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_transformers_and_the_hubs_kernels_live_beside_assay(tmp_path):
    # `kernels` is the Hub's distribution (transformers >= 5.25 imports it); ours is assay.kernels
    code = ("import kernels, transformers, assay.kernels\n"
            "from transformers import LlamaConfig\n"
            "assert 'site-packages' in kernels.__file__, kernels.__file__\n"
            "assert kernels.__file__ != assay.kernels.__file__\n"
            "print(transformers.__version__)\n")
    res = _python(code, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
