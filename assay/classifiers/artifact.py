"""Model directories: the kind's model files plus metadata.json, sealed by a content hash.

    model-dir/
      model.bin | head.npz   the kind's files (all covered by `content_hash`)
      metadata.json          kind, task, label source, training-data hash, settings, metrics, threshold,
                             library versions, created-at, content_hash

Loading recomputes the hash and refuses a directory whose files changed, are missing, or belong to another
kind. Evaluation later writes metrics and the threshold into metadata.json; the hash covers the model
files only, so that update never invalidates the model.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from typing import Any

from assay.classifiers.base import TextClassifier
from assay.classifiers.kinds import KIND_NAMES, kind_class
from assay.classifiers.shipped import resolve_model_dir
from assay.groundwork.atomic import atomic_folder, check_replaceable, write_json_atomic

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


class ModelDirError(ValueError):
    """A model directory that cannot be used as it is; the message says what to do."""


def files_hash(directory: str, names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        path = os.path.join(directory, name)
        h.update(name.encode() + b"\x00")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\x00")
    return h.hexdigest()


def save_model(clf: TextClassifier, directory: str, label_source: dict[str, Any],
               training_data_hash: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a complete model directory atomically (built beside it, then renamed into place); an existing
    `directory` is replaced only if it is a model directory (or empty)."""
    check_replaceable(directory, lambda d: os.path.isfile(os.path.join(d, METADATA_FILE)), "a model directory")
    with atomic_folder(directory) as tmp:
        clf.save_files(tmp)
        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": clf.kind,
            "task": clf.task,
            "label_source": label_source,
            "training_data_hash": training_data_hash,
            "settings": clf.settings(),
            "files": list(clf.model_files),
            "content_hash": files_hash(tmp, clf.model_files),
            "library_versions": {"python": sys.version.split()[0], **clf.library_versions()},
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "threshold": None,
            "metrics": None,
            **(extra or {}),
        }
        write_json_atomic(metadata, os.path.join(tmp, METADATA_FILE))
    return metadata


def read_metadata(directory: str) -> dict[str, Any]:
    directory = resolve_model_dir(directory)
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isdir(directory):
        raise ModelDirError(f"model directory {directory!r} does not exist: train one with `assay classify train`")
    if not os.path.isfile(path):
        raise ModelDirError(f"{directory!r} has no {METADATA_FILE}: it is not a model directory written by "
                            "`assay classify train`; retrain into a fresh directory")
    try:
        with open(path, encoding="utf-8") as fh:
            metadata = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path} is unreadable ({exc}): the model directory is corrupt; retrain it") from exc
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get('format_version') if isinstance(metadata, dict) else None
        raise ModelDirError(f"{path} has format_version {found!r}, "
                            f"expected {FORMAT_VERSION}: retrain with this version of assay")
    return metadata


def verify_model_dir(directory: str) -> dict[str, Any]:
    """The metadata of a complete, unchanged model directory (or shipped model name); ModelDirError (saying
    what to do) otherwise."""
    directory = resolve_model_dir(directory)
    metadata = read_metadata(directory)
    kind = metadata.get("kind")
    if kind not in KIND_NAMES:
        raise ModelDirError(f"{directory!r}: unknown kind {kind!r} in metadata (known: {', '.join(KIND_NAMES)})")
    cls = kind_class(kind)
    files = tuple(metadata.get("files") or ())
    if files != cls.model_files:
        raise ModelDirError(f"{directory!r}: metadata lists files {list(files)} but a {kind} model has "
                            f"{list(cls.model_files)}; the metadata belongs to another model: retrain")
    missing = [f for f in files if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise ModelDirError(f"{directory!r} is missing {missing}: copy the whole model directory, or retrain")
    actual = files_hash(directory, files)
    if actual != metadata.get("content_hash"):
        raise ModelDirError(f"{directory!r}: model files do not match metadata content_hash "
                            f"({actual[:12]}... != {str(metadata.get('content_hash'))[:12]}...): the files were "
                            "changed or mixed with another model's; restore the original directory or retrain")
    return metadata


def load_model(directory: str) -> tuple[TextClassifier, dict[str, Any]]:
    """A fitted classifier and its metadata, after checking the directory is complete and unchanged."""
    directory = resolve_model_dir(directory)
    metadata = verify_model_dir(directory)
    kind = metadata["kind"]
    cls = kind_class(kind)
    try:
        clf = cls.load_files(directory, metadata)
    except ModelDirError:
        raise
    except Exception as exc:
        raise ModelDirError(f"{directory!r}: cannot load the {kind} model ({type(exc).__name__}: {exc})") from exc
    return clf, metadata


def update_metadata(directory: str, **fields: Any) -> dict[str, Any]:
    """Merge fields (metrics, threshold) into metadata.json, atomically."""
    directory = resolve_model_dir(directory)
    metadata = read_metadata(directory)
    metadata.update(fields)
    write_json_atomic(metadata, os.path.join(directory, METADATA_FILE), default=float)
    return metadata
