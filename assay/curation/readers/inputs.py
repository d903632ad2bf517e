"""Files, directories and globs -> the sorted list of input units a run reads (one unit per file).

Sorted and de-duplicated, so the same inputs give the same run. Local files are de-duplicated by their real
path (a symlink, a symlink loop under `**`, or two patterns naming one file give it once: the first name in
sorted order). Directories are walked recursively; hidden files (".name", e.g. half-written temp files) and
files of no known format are passed over with a warning.
"""
from __future__ import annotations

import fnmatch
import glob
import logging
import os

from assay.curation.readers.config import FORMATS, ReaderConfig
from assay.curation.readers.files import is_remote, list_remote, match_remote
from assay.curation.readers.formats import DATASET_SIDE_FILES, accepted_formats, format_of

log = logging.getLogger(__name__)
_GLOB_CHARS = "*?["


def _wanted(path: str, cfg: ReaderConfig) -> bool:
    name = os.path.basename(path)
    if name.startswith("."):
        return False
    if cfg.include and not any(fnmatch.fnmatch(name, pat) for pat in cfg.include):
        return False
    return not any(fnmatch.fnmatch(name, pat) for pat in cfg.exclude)


def _in_split(relative: str, split: str) -> bool:
    """Whether a file (its path inside the folder given) belongs to `split` of a Hugging Face-style dataset: it is
    under a folder of that name, or its name is the split's followed by "-", "_" or "." ("" = every file)."""
    if not split:
        return True
    *folders, name = relative.split("/")
    return split in folders or any(name.startswith(split + sep) for sep in "-_.")


def _split_note(cfg: ReaderConfig) -> str:
    return f" of split {cfg.split!r} (reader.split)" if cfg.split else ""


def _walk(directory: str, cfg: ReaderConfig) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, name) for name in sorted(files)]
    return _readable(found, directory, cfg)


def _readable(paths: list[str], where: str, cfg: ReaderConfig) -> list[str]:
    """The wanted files of known format among `paths` (a listing of `where`), warning about the others."""
    prefix = where.rstrip("/") + "/"
    visible = [p for p in paths if not any(part.startswith(".") for part in p.removeprefix(prefix).split("/"))
               and os.path.basename(p) not in DATASET_SIDE_FILES]
    wanted = [p for p in visible if _wanted(p, cfg) and _in_split(p.removeprefix(prefix), cfg.split)]
    unknown = [p for p in wanted if not format_of(p, cfg.format)]
    if unknown:
        log.warning("%s: passed over %d file(s) of no known format, e.g. %s (accepted: %s)",
                    where, len(unknown), unknown[0], accepted_formats())
    return [p for p in wanted if format_of(p, cfg.format)]


def _expand_remote(given: str, cfg: ReaderConfig) -> list[str]:
    """Like the local expansion, through Beam's FileSystems (gs://, s3://, ...)."""
    if any(c in given for c in _GLOB_CHARS):
        matches = match_remote(given)
        if not matches:
            raise ValueError(f"input pattern {given!r} matches no file; check the path "
                             f"(accepted formats: {accepted_formats()})")
        return [p for p in matches if _wanted(p, cfg) and format_of(p, cfg.format)]
    is_file, found = list_remote(given)
    if is_file:
        if not format_of(given, cfg.format):
            raise ValueError(f"input file {given!r} has no known format; rename it to one of "
                             f"{accepted_formats()} or set reader.format ({', '.join(FORMATS[1:])})")
        return found
    if not found:
        raise ValueError(f"input path {given!r} does not exist (no object and no folder of that name); give a "
                         f"file, a folder or a glob pattern of {accepted_formats()}")
    readable = _readable(found, given, cfg)
    if not readable:
        raise ValueError(f"input folder {given!r} holds no readable file{_split_note(cfg)} (accepted formats: "
                         f"{accepted_formats()}; or set reader.format to read every file as one format)")
    return readable


def expand_inputs(paths: list[str], cfg: ReaderConfig | None = None) -> list[str]:
    """Turn files, directories and glob patterns into a sorted list of files to read.

    Raises ValueError naming the path when a path or pattern matches nothing, or names a file of no known format.
    """
    cfg = cfg or ReaderConfig()
    if isinstance(paths, str):
        paths = [paths]
    units: set[str] = set()
    for given in paths:
        if is_remote(given):
            units.update(_expand_remote(given, cfg))
            continue
        path = os.path.expanduser(given)
        if any(c in path for c in _GLOB_CHARS) and not os.path.exists(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise ValueError(f"input pattern {given!r} matches no file; check the path "
                                 f"(accepted formats: {accepted_formats()})")
            for match in matches:
                if os.path.isdir(match):
                    units.update(_walk(match, cfg))
                elif _wanted(match, cfg) and format_of(match, cfg.format):
                    units.add(match)
            continue
        if os.path.isdir(path):
            found = _walk(path, cfg)
            if not found:
                raise ValueError(f"input directory {given!r} holds no readable file{_split_note(cfg)} (accepted "
                                 f"formats: {accepted_formats()}; or set reader.format to read every file as one "
                                 "format)")
            units.update(found)
        elif os.path.isfile(path):
            if not format_of(path, cfg.format):
                raise ValueError(f"input file {given!r} has no known format; rename it to one of "
                                 f"{accepted_formats()} or set reader.format ({', '.join(FORMATS[1:])})")
            units.add(path)
        else:
            raise ValueError(f"input path {given!r} does not exist; give a file, a directory or a glob pattern "
                             f"of {accepted_formats()}")
    return _one_name_per_file(sorted(units))


def _one_name_per_file(paths: list[str]) -> list[str]:
    """`paths` with each local file once (its first name in sorted order), however many links lead to it."""
    seen: dict[str, str] = {}
    kept = []
    for path in paths:
        real = path if is_remote(path) else os.path.realpath(path)
        if real in seen:
            continue
        seen[real] = path
        kept.append(path)
    if len(kept) < len(paths):
        log.warning("%d input name(s) lead to a file already listed (symlinks, a symlink loop or overlapping "
                    "patterns): each file is read once", len(paths) - len(kept))
    return kept
