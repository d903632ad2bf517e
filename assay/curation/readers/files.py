"""Local paths through the os module; "scheme://" paths (gs://, s3://, hdfs://, ...) through Beam's FileSystems.

So the same config reads a local folder on a laptop and a bucket on Dataflow. Remote files are opened
uncompressed (the readers sniff compression themselves) and must be seekable, as Beam's GCS/S3 streams are.
"""
from __future__ import annotations

import os
from typing import BinaryIO


def shown_name(path: str) -> str:
    """A file name as text every writer takes: bytes of a name that are not UTF-8 (which Python holds as lone
    surrogates, "surrogateescape") shown as \\xNN, e.g. b"caf\\xe9.jsonl" -> "caf\\\\xe9.jsonl"."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_remote(path: str) -> bool:
    return "://" in path


def open_binary(path: str) -> BinaryIO:
    if not is_remote(path):
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def size_of(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([path])[0].metadata_list
    if not found:
        raise FileNotFoundError(f"{path}: no such file")
    return found[0].size_in_bytes


def match_remote(pattern: str) -> list[str]:
    """Files matching a remote glob pattern (`**` crosses folders), sorted."""
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def list_remote(path: str) -> tuple[bool, list[str]]:
    """(is a file, files): a remote path is a "folder" prefix with files under it, or one object, or nothing.

    Objects under the prefix win: stores keep folders as prefixes, sometimes with an empty placeholder object.
    """
    under = match_remote(path.rstrip("/") + "/**")
    if under:
        return False, under
    exact = [p for p in match_remote(path) if p == path]
    return bool(exact), exact
