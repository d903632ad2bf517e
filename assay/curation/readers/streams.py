"""Open a possibly compressed file as one streaming binary reader, and name what went wrong with it.

The compression is sniffed from the first bytes (gzip, zstd), not trusted from the file name. A stream that
stops before its compressed end raises EOFError, so a cut file is reported instead of read short in silence.
"""
from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

import zstandard

from assay.curation.readers.files import open_binary

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 16
_ZSTD_FEED = 1 << 12


def sniff_compression(path: str) -> str:
    """"gzip", "zstd" or "" from the file's first bytes."""
    with open_binary(path) as fh:
        head = fh.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


class _ZstdReader(io.RawIOBase):
    """Streaming zstd decompression across concatenated frames that raises EOFError on a cut frame
    (zstandard's own stream_reader returns a short read without complaint). Compressed input goes in
    `_ZSTD_FEED` bytes at a time, which bounds what one step can inflate for ordinary text."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._in_frame = False
        self._pending = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _feed(self) -> bool:
        """Decompress the next input chunk into `_pending`; False at a clean end of input."""
        data = self._raw.read(_ZSTD_FEED)
        if not data:
            if self._in_frame:
                raise EOFError("zstd stream ended before the end of its last frame (the file was cut)")
            return False
        out = []
        while data:
            self._in_frame = True
            out.append(self._dobj.decompress(data))
            if not self._dobj.eof:
                break
            data = self._dobj.unused_data  # the next frame starts in this chunk
            self._dobj = self._dctx.decompressobj()
            self._in_frame = False
        self._pending, self._pos = b"".join(out), 0
        return True

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._pending):
            if not self._feed():
                return 0
        n = min(len(buffer), len(self._pending) - self._pos)
        buffer[:n] = self._pending[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class TruncatedStream(Exception):
    """A compressed stream ended before its end marker. Deliberately not an EOFError: readers such as warcio
    take EOFError for a clean end of input and would stop in silence."""


class CutAware(io.RawIOBase):
    """Wraps a decompressing reader so a cut stream raises TruncatedStream after every readable byte came out."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._fh.read1(size if size and size > 0 else _CHUNK)
        except EOFError as exc:
            raise TruncatedStream(str(exc) or "compressed stream ended early") from None

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_decompressed(path: str) -> BinaryIO:
    """A buffered binary reader over the decompressed bytes of `path` (plain, gzip or zstd)."""
    kind = sniff_compression(path)
    if kind == "gzip":
        return open_gzip(path)
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(open_binary(path)), buffer_size=_CHUNK)
    return open_binary(path)


class _OwningGzipFile(gzip.GzipFile):
    """A GzipFile over a file object that it also closes (gzip leaves a passed-in fileobj open)."""

    def close(self) -> None:
        raw = self.fileobj
        try:
            super().close()
        finally:
            if raw is not None:
                raw.close()


def open_gzip(path: str) -> BinaryIO:
    return _OwningGzipFile(fileobj=open_binary(path), mode="rb")


def stream_error_reason(exc: BaseException) -> str | None:
    """The ledger reason for an exception raised while decompressing, or None if it is something else."""
    if isinstance(exc, (EOFError, TruncatedStream)):
        return "truncated_gzip"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile, zstandard.ZstdError)):
        return "corrupt_compression"
    return None
