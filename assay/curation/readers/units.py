"""Work units: one input file, or one range of a large one, so that every worker gets work from one big file.

A unit is (path, start, end, before): what `start`/`end` count depends on the format, and the reader of that
format reads exactly the records the unit owns.

  JSONL (plain)       byte offsets; every boundary is a line start (a nominal offset advanced past the next
                      newline), a unit owns the lines that start inside [start, end), `before` = lines before it
  WARC (plain)        byte offsets of record starts, found by walking the records' headers and Content-Lengths
  WARC (.warc.gz)     byte offsets of gzip members that start a record ("WARC/1."), found by inflating the file
                      member by member (output discarded, each member capped)
  Parquet             row groups [start, end), `before` = rows in the row groups before
  Arrow               record batches [start, end), `before` = rows in the batches before

Ids and ledger details never depend on the split: line and row numbers count from the start of the file, WARC
ids are record ids or file offsets. Small files (at most `unit_bytes`), compressed JSONL, WARC gzipped as one
stream and anything a planner cannot walk cleanly stay one unit (the planner stops at the first doubt and the
rest of the file is one unit, read as an unsplit file is), so a damaged file is read as it was before.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.files import open_binary, size_of
from assay.curation.readers.formats import format_of
from assay.curation.readers.streams import sniff_compression
from assay.curation.readers.warc import PLAIN_RECORD, WARC_MAGIC

#: bytes read (or inflated) at a time while planning units: bounds memory, decides nothing
_CHUNK = 1 << 20
#: compressed bytes fed to the inflater at a time while walking a gzip member
_SCAN = 1 << 16


@dataclass(frozen=True)
class Unit:
    """A whole file (end None) or the part of it in [start, end) (bytes, row groups or batches: see the module)."""

    path: str | bytes  # a local name that is not UTF-8 travels as its bytes
    start: int = 0
    end: int | None = None
    before: int = 0  # JSONL lines / table rows before `start` (line and row numbers count from the file's start)

    @property
    def name(self) -> str:
        import os

        return os.fsdecode(self.path) if isinstance(self.path, bytes) else self.path

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def plan_units(path: str | bytes, cfg: ReaderConfig, unit_bytes: int | None = None) -> list[Unit]:
    """The units of one input file, in file order; one whole unit when the file is small or cannot be split."""
    unit_bytes = unit_bytes or cfg.unit_bytes
    name = Unit(path).name
    if not unit_bytes:  # reader.unit_bytes = 0: files are not split
        return [Unit(path)]
    try:
        size = size_of(name)
        if size <= unit_bytes:
            return [Unit(path)]
        fmt = format_of(name, cfg.format)
        planner = _PLANNERS.get(fmt or "")
        units = list(planner(path, name, size, unit_bytes, cfg)) if planner else []
    except Exception:  # unreadable, not the format it claims...: read whole, the reader reports it
        return [Unit(path)]
    return units if len(units) > 1 else [Unit(path)]


def _ranges(path, starts: list[int], befores: list[int]) -> Iterator[Unit]:
    """Units from sorted boundaries (the first is 0); the last unit runs to the end of the file."""
    for i, (start, before) in enumerate(zip(starts, befores)):
        yield Unit(path, start, starts[i + 1] if i + 1 < len(starts) else None, before)


def _plan_jsonl(path, name: str, size: int, unit_bytes: int, cfg: ReaderConfig) -> Iterator[Unit]:
    if sniff_compression(name):
        return iter(())  # a compressed stream has no byte offsets to start at
    starts, befores = [0], [0]
    lines, pos, target = 0, 0, unit_bytes
    with open_binary(name) as fh:
        while chunk := fh.read(_CHUNK):
            while target < pos + len(chunk):  # the first line start after `target` inside this chunk
                nl = chunk.find(b"\n", max(target - pos - 1, 0))
                if nl < 0:
                    break
                boundary = pos + nl + 1
                if boundary >= size:
                    break
                starts.append(boundary)
                befores.append(lines + chunk.count(b"\n", 0, nl + 1))
                target = boundary + unit_bytes
            lines += chunk.count(b"\n")
            pos += len(chunk)
    return _ranges(path, starts, befores)


def _plan_warc(path, name: str, size: int, unit_bytes: int, cfg: ReaderConfig) -> Iterator[Unit]:
    compression = sniff_compression(name)
    if not compression:
        starts = _walk_plain_warc(name, size, unit_bytes)
    elif compression == "gzip":
        starts = _walk_gzip_members(name, size, unit_bytes, cfg)
    else:
        return iter(())
    return _ranges(path, starts, [0] * len(starts))


def _walk_plain_warc(name: str, size: int, unit_bytes: int) -> list[int]:
    """Record starts about `unit_bytes` apart: each record's header is read and its block skipped by its
    Content-Length; the walk stops at anything that is not a well-formed record."""
    starts, pos, target = [0], 0, unit_bytes
    with open_binary(name) as fh:
        while pos < size:
            fh.seek(pos)
            if fh.read(len(WARC_MAGIC)) != WARC_MAGIC:
                break
            fh.seek(pos)
            length, header = None, 0
            for _ in range(256):  # header lines
                line = fh.readline(1 << 16)
                header += len(line)
                if not line.endswith(b"\n"):
                    return starts
                if line in (b"\r\n", b"\n"):
                    break
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length is None or length < 0:
                break
            fh.seek(pos + header + length)
            if fh.read(4) != b"\r\n\r\n":
                break
            pos = pos + header + length + 4
            if pos >= target and pos < size:
                fh.seek(pos)
                if fh.read(len(WARC_MAGIC)) != WARC_MAGIC:
                    break
                starts.append(pos)
                target = pos + unit_bytes
    return starts


def _walk_gzip_members(name: str, size: int, unit_bytes: int, cfg: ReaderConfig) -> list[int]:
    """Starts of gzip members that begin a WARC record, about `unit_bytes` apart, found by inflating every member
    (output discarded). The walk stops at a member that is cut or corrupt, inflates past the cap (8x
    reader.max_record_bytes: a file gzipped as one stream, or a bomb), or holds more than one record."""
    cap = 8 * cfg.max_record_bytes
    starts, pos, target = [0], 0, unit_bytes
    with open_binary(name) as fh:
        while pos < size:
            fh.seek(pos)
            used = _member_length(fh, cap)
            if used is None:
                break
            pos += used
            if target <= pos < size:
                starts.append(pos)
                target = pos + unit_bytes
    return starts


def _member_length(fh, cap: int) -> int | None:
    """Compressed length of the gzip member at the file position, if it is whole, inflates to one WARC record
    and to at most `cap` bytes; else None."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    used, out, head, tail = 0, 0, b"", b""
    try:
        while not inflate.eof:
            data = fh.read(_SCAN)
            if not data:
                return None
            used += len(data)
            while data and not inflate.eof:
                piece = inflate.decompress(data, _CHUNK)
                out += len(piece)
                if len(head) < len(WARC_MAGIC):
                    head = (head + piece)[: len(WARC_MAGIC)]
                window = tail + piece
                if PLAIN_RECORD in window or out > cap:
                    return None
                tail = window[-len(PLAIN_RECORD):]
                data = inflate.unconsumed_tail
    except zlib.error:
        return None
    return used - len(inflate.unused_data) if head == WARC_MAGIC else None


def _plan_parquet(path, name: str, size: int, unit_bytes: int, cfg: ReaderConfig) -> Iterator[Unit]:
    import pyarrow.parquet as pq

    with open_binary(name) as fh:
        meta = pq.ParquetFile(fh).metadata
        if cfg.text_field not in meta.schema.to_arrow_schema().names:
            return iter(())  # one "missing_text_field" record for the whole file
        groups = [(meta.row_group(i).num_rows, meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups)]
    return _grouped(path, groups, unit_bytes)


def _plan_arrow(path, name: str, size: int, unit_bytes: int, cfg: ReaderConfig) -> Iterator[Unit]:
    from assay.curation.readers.arrow import open_batches

    with open_binary(name) as fh:
        names, batches = open_batches(fh)
        if cfg.text_field not in names:
            return iter(())
        groups = [(b.num_rows, b.nbytes) for b in batches]
    return _grouped(path, groups, unit_bytes)


def _grouped(path, groups: list[tuple[int, int]], unit_bytes: int) -> Iterator[Unit]:
    """Units of consecutive (rows, bytes) groups, each about `unit_bytes` of data."""
    starts, befores, rows, acc = [0], [0], 0, 0
    for i, (n, nbytes) in enumerate(groups):
        if acc >= unit_bytes and i > 0:
            starts.append(i)
            befores.append(rows)
            acc = 0
        rows += n
        acc += nbytes
    for i, (start, before) in enumerate(zip(starts, befores)):
        yield Unit(path, start, starts[i + 1] if i + 1 < len(starts) else None, before)


_PLANNERS = {"jsonl": _plan_jsonl, "warc": _plan_warc, "parquet": _plan_parquet, "arrow": _plan_arrow}
