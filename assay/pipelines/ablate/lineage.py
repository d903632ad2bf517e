"""Where a number came from: code version, config hashes, and the lineage fields every report row carries."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess

#: The lineage keys of a cell result and of every report row.
LINEAGE_KEYS = ("recipe_hash", "manifest_fingerprint", "tokenizer_hash", "code_version", "config_hash")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe --always --dirty` of the checkout assay runs from, else the installed package version."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=repo, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"assay=={version('assay')}"
    except PackageNotFoundError:
        return "unknown"


def json_hash(data) -> str:
    """sha256 of canonical JSON (sorted keys): equal configs give equal hashes."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def short(value: str, n: int = 12) -> str:
    """A hash cut to n characters for tables (a code version is kept whole)."""
    return value if value.startswith(("git:", "assay==")) else value[:n]
