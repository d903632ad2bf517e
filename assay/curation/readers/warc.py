"""WARC / WARC.gz -> Documents through warcio, resuming after a corrupt record instead of giving up the file.

response (HTTP), resource and conversion (WET text) records become Documents; warcinfo, request, metadata,
revisit and continuation records and dns: responses are not documents and are passed over. When warcio
cannot parse or delimit a record, reading resumes at the next gzip member (per-record .warc.gz) or the next
"WARC/1." line (plain .warc), and the skipped byte range becomes one "bad_warc_record" rejection. A cut
file yields what was readable, then one "truncated_gzip" (or "truncated_record") rejection for the rest.
Records are checked against their WARC digests, so bit rot inside a page does not pass as text.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.utils import BUFF_SIZE

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.decode import binary_reason, decode_body, media_type
from assay.curation.readers.files import open_binary, size_of
from assay.curation.readers.quarantine import rejected
from assay.curation.readers.streams import GZIP_MAGIC, CutAware, open_gzip, sniff_compression, stream_error_reason

_DOCUMENT_TYPES = ("response", "resource", "conversion")  # conversion: extracted text (WET files)
_NOT_DOCUMENTS = ("warcinfo", "request", "metadata", "revisit", "continuation")
_HTML_TYPES = ("", "text/html", "application/xhtml+xml")
_GZIP_MEMBER = GZIP_MAGIC + b"\x08"
#: every WARC record starts with its version line (WARC/1.0 and WARC/1.1, ISO 28500)
WARC_MAGIC = b"WARC/1."
#: where a record starts inside a plain WARC file: after the previous record's closing newlines
PLAIN_RECORD = b"\n" + WARC_MAGIC
#: bytes read at a time while scanning for the next record or skipping a bloated one (memory, not a rule)
_SCAN_CHUNK = 1 << 16
#: compressed bytes warcio inflates at a time: deflate expands at most ~1000x, so this bounds one inflated block
_BLOCK = 1024
#: the longest line warcio may read (WARC and HTTP header lines, the blank lines between records): a longer one is
#: data where a record's headers or its end should be, and is skipped instead of being read whole into memory
MAX_LINE_BYTES = 1 << 16


def _drain(stream) -> None:
    while stream.read(BUFF_SIZE):
        pass


def _record_to_doc(record, path: str, offset: int, cfg: ReaderConfig, gz: bool) -> Document | Rejection | None:
    """One parsed WARC record -> a Document, a Rejection, or None for records that are not documents."""
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI") or ""
    rid = headers.get_header("WARC-Record-ID") or stable_id(path, str(offset))
    ids = {"id": rid, "url": url}
    if record.rec_type in _NOT_DOCUMENTS or (record.rec_type == "response" and url.lower().startswith("dns:")):
        return None
    if record.rec_type not in _DOCUMENT_TYPES:  # a damaged or missing WARC-Type: say so rather than skip
        return rejected("bad_warc_record", path, f"unknown WARC-Type {record.rec_type!r}", **ids, offset=offset)
    http = record.http_headers
    if record.rec_type == "response" and http is None:
        return rejected("bad_warc_record", path, "response record without parseable HTTP headers", **ids, offset=offset)
    content_type = ((http.get_header("Content-Type") if http is not None else headers.get_header("Content-Type"))
                    or headers.get_header("WARC-Identified-Payload-Type"))
    status = http.get_statuscode() if http is not None else ""
    if status and not status.startswith("2"):
        return rejected("http_status", path, f"HTTP status {status} {http.statusline}", **ids, offset=offset,
                        status=status)
    limit = cfg.max_record_bytes
    if (record.length or 0) > limit:  # WARC Content-Length: the bytes the record really holds in the file
        return rejected("too_large", path, f"record holds {record.length} bytes, over reader.max_record_bytes="
                        f"{limit}; skipped without loading", **ids, offset=offset, bytes=record.length)
    body = record.content_stream().read(limit + 1)
    if len(body) > limit:  # a decompressed (Content-Encoding) body can outgrow its declared length
        return rejected("too_large", path, f"decoded body over reader.max_record_bytes={limit}", **ids,
                        offset=offset, bytes=len(body))
    _drain(record.raw_stream)
    missing = getattr(record.raw_stream, "limit", 0)
    if missing > 0:
        return rejected("truncated_gzip" if gz else "truncated_record", path,
                        f"record declares {record.length} bytes but the file ends {missing} bytes short",
                        **ids, offset=offset, bytes=record.length)
    checker = getattr(record, "digest_checker", None)
    if checker is not None and checker.passed is False:
        return rejected("digest_mismatch", path, "; ".join(checker.problems)[:500] + " (the bytes changed after the "
                        "crawl wrote them; set reader.verify_digests = false to read such records anyway)",
                        **ids, offset=offset, bytes=record.length)
    why = binary_reason(body, content_type)
    if why:
        return rejected("binary_content", path, why, **ids, offset=offset, bytes=len(body))
    decoded = decode_body(body, content_type, cfg.max_invalid_utf8_fraction)
    if decoded.text is None:
        return rejected(decoded.reason, path, decoded.detail, **ids, text=body.decode("utf-8", "replace"),
                        offset=offset, bytes=len(body))
    mime = "text/html" if media_type(content_type) in _HTML_TYPES else "text/plain"
    return Document(id=rid, text=decoded.text, source=path, url=url, date=headers.get_header("WARC-Date") or "",
                    mime=mime)


def _next_record_start(fh: BinaryIO, start: int, gz: bool) -> int | None:
    """Offset of the next plausible record start at or after `start` (scanned in chunks), or None."""
    marker = _GZIP_MEMBER if gz else PLAIN_RECORD
    skip = 0 if gz else 1  # a plain record starts after the newline that the marker includes
    pos = start
    fh.seek(pos)
    tail = b""
    while chunk := fh.read(_SCAN_CHUNK):
        data = tail + chunk
        hit = data.find(marker)
        if hit >= 0:
            return pos - len(tail) + hit + skip
        tail = data[-(len(marker) - 1):]
        pos += len(chunk)
    return None


class _BadRecord(Exception):
    """A record that parsed but cannot be delimited; reading resumes at the next record start."""


class _LongLine(Exception):
    """A line over MAX_LINE_BYTES where warcio expected a header or a blank line."""


class _JunkAfterRecord(Exception):
    """A record read whole, followed (in its gzip member, or before the next record) by data that is no record."""

    def __init__(self, offset: int):
        super().__init__(offset)
        self.offset = offset


def _bound_lines(reader) -> None:
    """Make warcio's reader refuse lines over MAX_LINE_BYTES (raising _LongLine after that many bytes) instead of
    growing one line through a member's worth of decompressed data."""
    readline = reader.readline

    def bounded(length=None):
        cap = MAX_LINE_BYTES + 1 if not length or length < 0 else min(length, MAX_LINE_BYTES + 1)
        line = readline(cap)
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise _LongLine(f"a line of more than {MAX_LINE_BYTES} bytes")
        return line

    reader.readline = bounded


class _Pass:
    """One warcio pass over `fh` from `start` (None: where it is); `it.offset` tells where a failure happened
    (the failing record's start)."""

    def __init__(self, fh: BinaryIO, path: str, cfg: ReaderConfig, gz: bool, start: int | None):
        if start is not None:
            fh.seek(start)
        self.it = ArchiveIterator(fh, check_digests=cfg.verify_digests, block_size=_BLOCK)
        _bound_lines(self.it.reader)
        self.path, self.cfg, self.gz = path, cfg, gz

    def records(self, skip: int = 0, stop: int | None = None) -> Iterator[tuple[int, Document | Rejection | None]]:
        """(record offset, output) per record, output None for the first `skip`, up to the first record at or after
        `stop` (then `reached_stop` is set); warcio's parse errors propagate."""
        it, path = self.it, self.path
        self.reached_stop = False
        for n, record in enumerate(it):
            offset = it.offset
            if stop is not None and offset >= stop:  # the next work unit's first record
                self.reached_stop = True
                return
            if record.length is None:  # without a length warcio would read on into the next records
                raise _BadRecord(f"record at offset {offset} has no valid Content-Length header")
            try:
                out = None if n < skip else _record_to_doc(record, path, offset, self.cfg, self.gz)
            except Exception as exc:  # a record warcio parsed but whose body is unusable
                out = rejected("bad_warc_record", path, f"{type(exc).__name__}: {exc}",
                               id=record.rec_headers.get_header("WARC-Record-ID") or stable_id(path, str(offset)),
                               url=record.rec_headers.get_header("WARC-Target-URI") or "", offset=offset)
            errors = it.err_count
            try:
                it.read_to_end()
            except _LongLine:
                yield offset, out  # the record itself was read whole before the data that follows it
                raise _JunkAfterRecord(offset) from None
            if it.err_count > errors and out is not None:  # warcio found no blank line where the record should end
                out = rejected("bad_warc_record", path, "record not followed by the blank line that ends a WARC "
                               "record: its Content-Length does not match its bytes",
                               id=getattr(out, "id", ""), url=getattr(out, "url", ""), offset=offset)
            yield offset, out


def read_warc(path: str, cfg: ReaderConfig, start: int = 0, end: int | None = None,
              before: int = 0) -> Iterator[Document | Rejection]:
    """The records of `path`, or (a work unit: assay/curation/readers/units.py) those that start in bytes
    [start, end), both record starts; damage inside the unit is handled as in a whole file."""
    compression = sniff_compression(path)
    if compression == "zstd":
        yield rejected("unreadable_file", path, "zstd-compressed WARC is not supported by warcio; "
                       "recompress it with gzip per record (warcio recompress) or decompress it",
                       id=stable_id(path, "file"))
        return
    gz = compression == "gzip"
    size = size_of(path)
    stop = size if end is None else min(end, size)  # where this unit's records end
    pos, bad_since, bad_error, seen, last = start, None, None, 0, 0
    with open_binary(path) as fh:
        while pos < stop:
            one = _Pass(fh, path, cfg, gz, pos)
            seen_before = seen
            try:
                for offset, out in one.records(stop=None if end is None else stop):
                    if bad_since is not None:
                        yield _bad_range(path, bad_since, offset, bad_error)
                        bad_since = None
                    seen, last = seen + 1, offset
                    if out is not None:
                        yield out
            except Exception as exc:
                junk_after = exc.offset if isinstance(exc, _JunkAfterRecord) else (
                    last if seen > seen_before and max(one.it.offset, pos) <= last and "non-chunked" not in str(exc)
                    else None)  # the failure is inside the member of a record this pass read whole
                if junk_after is not None:
                    nxt = _next_record_start(fh, junk_after + 1, gz)
                    skipped_to = size if nxt is None else nxt
                    what = (f"a line of more than {MAX_LINE_BYTES} bytes" if isinstance(exc, _JunkAfterRecord)
                            else f"data that is no WARC record ({type(exc).__name__}: {str(exc)[:200]})")
                    yield rejected("bad_warc_record", path,
                                   f"the record at offset {junk_after} (read) is followed "
                                   f"{'in its gzip member' if gz else 'before the next record'} by {what}: what "
                                   f"follows it, up to offset {skipped_to}, was skipped",
                                   id=stable_id(path, f"after:{junk_after}"), offset=junk_after,
                                   skipped_to=skipped_to)
                    if nxt is None:
                        break
                    pos = nxt
                    continue
                if "non-chunked gzip" in str(exc) and start == 0 and end is None:  # one gzip stream over the
                    # whole file: read it sequentially (a file planned into units has one record per member)
                    yield from _read_whole_gzip(path, cfg, skip_records=seen)
                    return
                failed_at = max(one.it.offset, pos)  # warcio's offset can go wrong on a mangled stream
                if end is not None and failed_at >= stop:  # the next unit's first record: that unit reports it
                    break
                if bad_since is None:
                    bad_since, bad_error = failed_at, exc
                nxt = _next_record_start(fh, failed_at + 1, gz)
                if nxt is None:
                    break
                pos = nxt
                continue
            if one.reached_stop or (end is not None and one.it.offset >= stop):  # the rest belongs to the next unit
                break
            if bad_since is None and one.it.offset < size:
                yield _tail(path, fh, one.it.offset, size, gz)
            elif bad_since is None and gz and seen and not _gzip_member_complete(fh, last, size):
                yield rejected("truncated_gzip", path, f"the last gzip member (offset {last}) ends without its "
                               "trailer: the file was cut after that record, and whatever followed is lost",
                               id=stable_id(path, f"cut:{size}"), offset=last, bytes=size - last)
            break
        if bad_since is not None:  # up to the next unit's first record, or to the end of the file
            yield _bad_range(path, bad_since, stop, bad_error, tail=stop >= size)


def _gzip_member_complete(fh: BinaryIO, start: int, end: int) -> bool:
    """Whether the gzip member at `start` reaches its end marker before `end` (output discarded as it comes)."""
    fh.seek(start)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    remaining = end - start
    try:
        while remaining > 0 and not inflate.eof:
            data = fh.read(min(_SCAN_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            while data and not inflate.eof:
                inflate.decompress(data, _SCAN_CHUNK)
                data = inflate.unconsumed_tail
    except zlib.error:
        return False
    return inflate.eof


def _bad_range(path: str, start: int, end: int, error: BaseException | None, tail: bool = False) -> Rejection:
    reason = stream_error_reason(error) if error is not None else None
    if reason is None or not tail:
        reason = "bad_warc_record"
    where = "to the end of the file" if tail else "up to the next readable record"
    return rejected(reason, path, f"bytes {start}..{end} ({where}) skipped: {type(error).__name__}: {error}",
                    id=stable_id(path, str(start)), offset=start, bytes=end - start)


def _tail(path: str, fh: BinaryIO, end: int, size: int, gz: bool) -> Rejection:
    fh.seek(end)
    head = fh.read(64)
    reason = "truncated_gzip" if gz else "truncated_record"
    return rejected(reason, path, f"the last {size - end} bytes (from offset {end}) hold no complete record; "
                    f"they start with {head[:32]!r}", id=stable_id(path, str(end)), offset=end, bytes=size - end)


def _read_whole_gzip(path: str, cfg: ReaderConfig, skip_records: int) -> Iterator[Document | Rejection]:
    """A WARC gzipped as one stream (not per record): read sequentially; a fault ends the file with one rejection."""
    with CutAware(open_gzip(path)) as fh:
        n = 0
        try:
            for _, out in _Pass(fh, path, cfg, gz=True, start=None).records(skip=skip_records):
                n += 1
                if out is not None:
                    yield out
        except Exception as exc:
            yield rejected(stream_error_reason(exc) or "bad_warc_record", path,
                           f"after record {n} (single-stream gzip, no resync possible): {type(exc).__name__}: {exc}",
                           id=stable_id(path, f"record:{n}"), record=n)
