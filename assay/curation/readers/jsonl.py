"""JSONL (plain, .gz, .zst) -> Documents, one line at a time; a bad line is quarantined, the rest go on.

No line is ever held whole when it is over the size limit: it is skipped in chunks and reported as too_large.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.files import open_binary
from assay.curation.readers.quarantine import rejected
from assay.curation.readers.streams import open_decompressed, stream_error_reason

#: bytes read at a time while skipping the rest of an oversized line (memory, not a rule)
_CHUNK = 1 << 16


def _skip_rest_of_line(fh: BinaryIO) -> int:
    skipped = 0
    while True:
        part = fh.readline(_CHUNK)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def field_str(value: Any) -> str:
    """A metadata field as text: None -> "", numbers as written."""
    return "" if value is None else str(value)


_JSON_TYPES = {int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}


def parse_line(line: bytes, path: str, lineno: int, cfg: ReaderConfig) -> Document | Rejection:
    fallback_id = stable_id(path, str(lineno))
    where = {"line": lineno, "bytes": len(line)}
    try:
        raw = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return rejected("invalid_encoding", path, f"line {lineno} is not UTF-8 (JSON must be): {exc}",
                        id=fallback_id, text=line.decode("utf-8", "replace").rstrip("\r\n"), **where)
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return rejected("bad_json", path, f"line {lineno} is not valid JSON: {exc}", id=fallback_id, text=raw, **where)
    if not isinstance(obj, dict):
        return rejected("bad_json", path, f"line {lineno} is a JSON {type(obj).__name__}, not an object",
                        id=fallback_id, text=raw, **where)
    doc_id = field_str(obj.get(cfg.id_field)) or fallback_id
    url = field_str(obj.get(cfg.url_field))
    text = obj.get(cfg.text_field)
    if text is not None and not isinstance(text, str):
        return rejected("wrong_type", path,
                        f"line {lineno}: type error: text field {cfg.text_field!r} holds a JSON "
                        f"{_JSON_TYPES.get(type(text), type(text).__name__)}, not a string (set reader.text_field "
                        "to the field that holds the text)", id=doc_id, url=url, text=raw, **where)
    if not isinstance(text, str):
        got = "missing" if cfg.text_field not in obj else "null"
        return rejected("missing_text_field", path,
                        f"line {lineno}: text field {cfg.text_field!r} is {got}; fields present: {sorted(obj)[:20]} "
                        "(set reader.text_field to the field that holds the text)",
                        id=doc_id, url=url, text=raw, **where)
    return Document(id=doc_id, text=text, source=path, url=url, date=field_str(obj.get(cfg.date_field)),
                    mime="text/plain")


def read_jsonl(path: str, cfg: ReaderConfig, start: int = 0, end: int | None = None,
               before: int = 0) -> Iterator[Document | Rejection]:
    """The lines of `path`, or (a work unit of a plain file: assay/curation/readers/units.py) the lines that start
    in bytes [start, end), `before` lines coming before `start`; line numbers count from the file's start."""
    limit = cfg.max_record_bytes
    lineno = before
    try:
        with (open_decompressed(path) if start == 0 and end is None else open_binary(path)) as fh:
            if start:
                fh.seek(start)
            pos = start
            while (end is None or pos < end) and (line := fh.readline(limit + 1)):
                lineno += 1
                pos += len(line)
                if len(line) > limit and not line.endswith(b"\n"):
                    skipped = _skip_rest_of_line(fh)
                    pos += skipped
                    size = len(line) + skipped
                    yield rejected("too_large", path, f"line {lineno} has {size} bytes, over reader.max_record_bytes"
                                   f"={limit}", id=stable_id(path, str(lineno)), line=lineno, bytes=size)
                elif line.strip():
                    yield parse_line(line, path, lineno, cfg)
    except Exception as exc:
        reason = stream_error_reason(exc)
        if reason is None:
            raise
        caveat = ("the lines before were read (a checksum fails only at the end of a compressed stream, so they "
                  "may carry the damage)" if reason == "corrupt_compression" else "the lines before were read")
        yield rejected(reason, path, f"after line {lineno}: {exc}; {caveat}, the rest is lost",
                       id=stable_id(path, f"tail:{lineno}"), line=lineno + 1)
