"""A fastText model file checked before the fastText library opens it.

fastText's loader trusts the file: a dictionary word is read byte by byte until a NUL, so a file cut inside its
dictionary makes it append the end-of-file value forever (memory grows without bound), and a matrix header
that claims more rows than the file holds makes it allocate that much. A model folder may come from someone
else, and a download may stop half way: `check_fasttext_file` walks the same layout (fastText 0.9's
Args, Dictionary, dense or quantized matrices) without trusting any count, and says what is wrong.
"""
from __future__ import annotations

import mmap
import os
import struct

MAGIC = 793712314  # FASTTEXT_FILEFORMAT_MAGIC_INT32
MAX_VERSION = 12  # FASTTEXT_VERSION of fastText 0.9 (src/fasttext.h): the newest file format
ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
DICT_HEADER = struct.Struct("<iiiqq")  # size nwords nlabels ntokens pruneidx_size
ENTRY_TAIL = 9  # int64 count, int8 type
KSUB = 256  # centroids per sub-quantizer


class FastTextFileError(ValueError):
    """The file is not a complete fastText model."""


def check_fasttext_file(path: str) -> None:
    """Raise FastTextFileError (naming the file and what to do) unless `path` is a complete fastText .bin/.ftz."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh, (mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else
                                      _Empty()) as data:
            end = _Reader(data, size).model()
    except _Short as exc:
        raise FastTextFileError(f"{path}: not a complete fastText model ({exc}; the file has {size} bytes): it is "
                                "cut short or not a fastText file; download or copy it again, or retrain") from None
    except OSError as exc:
        raise FastTextFileError(f"{path}: cannot read the fastText model ({exc})") from None
    if end != size:
        raise FastTextFileError(f"{path}: {size - end} bytes after the end of the fastText model: it is not one "
                                "model file; download or copy it again, or retrain")


class _Short(Exception):
    pass


class _Empty:
    def __enter__(self):
        return b""

    def __exit__(self, *exc):
        return False


class _Reader:
    def __init__(self, data, size: int):
        self.data, self.size, self.pos = data, size, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise _Short(f"{what} needs {n} bytes at offset {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))

    def model(self) -> int:
        magic, version = self.unpack(struct.Struct("<ii"), "the header")
        if magic != MAGIC:
            raise _Short("no fastText magic number at the start")
        if not 0 < version <= MAX_VERSION:
            raise _Short(f"format version {version}, this fastText reads up to {MAX_VERSION}")
        dim = self.unpack(ARGS, "the training arguments")[0]
        if dim <= 0:
            raise _Short(f"dimension {dim}")
        self.dictionary()
        quantized = self.take(1, "the input matrix flag") != b"\0"
        self.quant_matrix("input") if quantized else self.dense_matrix("input")
        qout = self.take(1, "the output matrix flag") != b"\0"
        self.quant_matrix("output") if quantized and qout else self.dense_matrix("output")
        return self.pos

    def dictionary(self) -> None:
        words, nwords, nlabels, _, pruned = self.unpack(DICT_HEADER, "the dictionary header")
        if words < 0 or nwords < 0 or nlabels < 0 or nwords + nlabels != words:
            raise _Short(f"a dictionary of {words} entries with {nwords} words and {nlabels} labels")
        for i in range(words):
            nul = self.data.find(b"\0", self.pos, self.size)
            if nul < 0:
                raise _Short(f"dictionary entry {i} of {words} has no end")
            self.pos = nul + 1
            self.take(ENTRY_TAIL, f"dictionary entry {i} of {words}")
        if pruned > 0:
            self.take(8 * pruned, f"{pruned} pruned-index pairs")

    def dense_matrix(self, what: str) -> None:
        rows, cols = self.unpack(struct.Struct("<qq"), f"the {what} matrix header")
        if rows < 0 or cols < 0:
            raise _Short(f"the {what} matrix has {rows} x {cols} entries")
        self.take(4 * rows * cols, f"the {what} matrix of {rows} x {cols} floats")

    def quant_matrix(self, what: str) -> None:
        qnorm, rows, _, codesize = self.unpack(struct.Struct("<?qqi"), f"the quantized {what} matrix header")
        self.take(codesize, f"the {what} matrix codes")
        self.quantizer(what)
        if qnorm:
            self.take(rows, f"the {what} matrix norm codes")
            self.quantizer(f"{what} norm")

    def quantizer(self, what: str) -> None:
        dim = self.unpack(struct.Struct("<iiii"), f"the {what} quantizer header")[0]
        self.take(4 * KSUB * dim, f"the {what} quantizer centroids")
