"""A finished token-shard folder in the formats other trainers read: Megatron-LM / NeMo indexed datasets,
nanoGPT-style flat token files and litdata optimized datasets (LitGPT).

Both are written from the mix's own shards (assay/trainer/token_shards.py), so they hold exactly the mix's tokens:

- Document boundaries. The mix appends one EOS to every document and encodes a literal `<|endoftext|>` in a
  text as text, so inside a phase's packed stream (its rows in packing order, before the shuffle) the EOS ids
  are exactly the document ends. Each exported document is one assay document with its EOS as last token; the
  phase's last document is cut where the phase's sequences end (no EOS: the mix dropped the rest of it too).
  A document sampled twice (`max_repeats`) appears twice, as in the mix.
- Megatron (`megatron/<phase>_text_document.bin/.idx`, the MMIDIDX v1 format of megatron.core.datasets.
  indexed_dataset): one indexed dataset per phase, one sequence per document, document_indices 0..n. Tokens are
  uint16 (dtype code 8) when the vocabulary fits, else int32 (code 4), as Megatron's own preprocessing picks.
  Megatron packs and shuffles these documents itself (its GPTDataset), with its own seed.
- nanoGPT (`nanogpt/train.bin`, `val.bin`, `meta.pkl`): train.bin is every phase's packed stream in phase order,
  concatenated (documents separated by their EOS); val.bin is the held-out documents of every pool (by pool
  name, then id) tokenized as the mix tokenizes, each followed by EOS; raw little-endian uint16 when the
  vocabulary fits in 16 bits (nanoGPT's `np.memmap(..., dtype=np.uint16)`), else uint32 (change that dtype in
  nanoGPT's train.py). meta.pkl holds {"vocab_size": V}, which nanoGPT's train.py reads.
- litdata (`litdata/<phase>/`: index.json and chunk-*.bin, written with litdata's own BinaryWriter and
  TokensLoader, as LitGPT's data preparation writes them): one item per document (the Megatron export's
  documents, each ending with its EOS), uint16 tokens when the vocabulary fits, else int32. LitGPT reads a
  phase with `StreamingDataset(dir, item_loader=TokensLoader(block_size=seq_len + 1))`, which cuts the phase's
  concatenated tokens into blocks across document boundaries. Needs the `litdata` package (`make install` adds it
  with --no-deps: its declared torchvision is not needed to write or read tokens).
"""
from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator

import numpy as np

from assay.groundwork.atomic import atomic_path, write_bytes_atomic
from assay.trainer.token_shards import TokenShardReader, heldout_pools, read_heldout, token_dtype

FORMATS = ("megatron", "nanogpt", "litdata")
MEGATRON_DIR = "megatron"
NANOGPT_DIR = "nanogpt"
LITDATA_DIR = "litdata"
MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
#: megatron.core.datasets.indexed_dataset.DType codes of the two token types written here
MEGATRON_DTYPE_CODES = {np.dtype("<u2"): 8, np.dtype("<i4"): 4}


def megatron_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<i4")


def phase_streams(reader: TokenShardReader) -> Iterator[tuple[str, np.ndarray]]:
    """(phase name, its packed token stream: rows in packing order, concatenated), phase by phase."""
    index = np.asarray(reader.index)
    for phase_id, phase in enumerate(reader.manifest["phases"]):
        rows = np.nonzero(index[:, 0] == phase_id)[0]
        rows = rows[np.argsort(index[rows, 3], kind="stable")]
        parts = [reader.stored_row(int(index[r, 1]), int(index[r, 2])) for r in rows]
        yield phase["name"], (np.concatenate(parts) if parts else np.zeros(0, reader.dtype))


def split_documents(stream: np.ndarray, eos: int) -> list[np.ndarray]:
    """The documents of a packed stream: each ends with its EOS; a last fragment without EOS is kept as it is."""
    ends = np.nonzero(stream == eos)[0] + 1
    bounds = [0, *ends.tolist()]
    if bounds[-1] != len(stream):
        bounds.append(len(stream))
    return [stream[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def write_megatron(prefix: str, documents: list[np.ndarray], vocab_size: int) -> list[str]:
    """PREFIX.bin and PREFIX.idx (MMIDIDX v1), one sequence per document; returns the two paths."""
    dtype = megatron_dtype(vocab_size)
    lengths = np.array([len(d) for d in documents], dtype=np.int32)
    pointers = np.zeros(len(documents), dtype=np.int64)
    if len(documents) > 1:
        pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64)) * dtype.itemsize
    document_indices = np.arange(len(documents) + 1, dtype=np.int64)
    with atomic_path(prefix + ".bin") as tmp, open(tmp, "wb") as fh:
        for doc in documents:
            fh.write(np.ascontiguousarray(doc, dtype=dtype).tobytes())
    header = (MEGATRON_HEADER + struct.pack("<Q", MEGATRON_VERSION) + struct.pack("<B", MEGATRON_DTYPE_CODES[dtype])
              + struct.pack("<Q", len(documents)) + struct.pack("<Q", len(document_indices)))
    write_bytes_atomic(header + lengths.tobytes() + pointers.tobytes() + document_indices.tobytes(), prefix + ".idx")
    return [prefix + ".bin", prefix + ".idx"]


def write_litdata(folder: str, documents: list[np.ndarray], vocab_size: int) -> list[str]:
    """A litdata optimized dataset in `folder` (index.json + chunk files), one item per document, written into a
    temporary folder beside it and renamed into place; returns the files written."""
    import shutil
    import tempfile

    try:
        import torch
        from litdata.streaming.item_loader import TokensLoader
        from litdata.streaming.writer import BinaryWriter
    except ImportError as exc:
        raise RuntimeError(f"--format litdata needs the litdata package ({exc}): pip install --no-deps "
                           "'litdata>=0.2.76,<0.3' lightning-utilities (`make install` does)") from None
    dtype = torch.uint16 if vocab_size <= 2**16 else torch.int32
    parent = os.path.dirname(folder)
    tmp = tempfile.mkdtemp(prefix=".litdata-", dir=parent)
    try:
        writer = BinaryWriter(tmp, chunk_bytes="64MB", item_loader=TokensLoader())
        for i, doc in enumerate(documents):
            writer.add_item(i, torch.from_numpy(np.asarray(doc, dtype=np.int64)).to(dtype))
        writer.done()
        writer.merge()
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))


def write_flat(path: str, arrays: list[np.ndarray], vocab_size: int) -> str:
    """Token arrays concatenated as one raw little-endian file (nanoGPT's train.bin / val.bin)."""
    dtype = token_dtype(vocab_size)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for arr in arrays:
            fh.write(np.ascontiguousarray(arr, dtype=dtype).tobytes())
    return path


def heldout_tokens(reader: TokenShardReader) -> list[np.ndarray]:
    """Every pool's held-out documents tokenized as the mix tokenizes (special tokens as text), each + EOS."""
    from assay.trainer.tokenizer import encode_all, eos_id, load_tokenizer

    tok = load_tokenizer(reader.tokenizer_path)
    tok.encode_special_tokens = True
    eos = eos_id(tok)
    out = []
    for path in heldout_pools(reader.directory).values():  # by pool name
        texts = read_heldout(path)
        for enc in encode_all(tok, texts) if texts else []:
            out.append(np.array([*enc.ids, eos], dtype=np.int64))
    return out


def export_tokens(directory: str, formats: list[str] | tuple[str, ...]) -> dict[str, dict]:
    """Write `formats` (of FORMATS) into the finished token-shard folder `directory`, from its own shards;
    returns {format: {"files": [relative paths], ...}} for the dataset card. ValueError for an unknown format."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown token export format(s) {unknown}; use any of {list(FORMATS)}")
    if not formats:
        return {}
    reader = TokenShardReader(directory, verify=False)
    eos = int(reader.manifest["eos_id"])
    vocab = reader.vocab_size
    streams = list(phase_streams(reader))
    done: dict[str, dict] = {}
    if "megatron" in formats:
        os.makedirs(os.path.join(directory, MEGATRON_DIR), exist_ok=True)
        files, docs = [], {}
        for name, stream in streams:
            documents = split_documents(stream, eos)
            docs[name] = len(documents)
            files += write_megatron(os.path.join(directory, MEGATRON_DIR, f"{name}_text_document"), documents, vocab)
        done["megatron"] = {"files": [os.path.relpath(f, directory) for f in files], "documents": docs,
                            "dtype": megatron_dtype(vocab).name}
    if "litdata" in formats:
        os.makedirs(os.path.join(directory, LITDATA_DIR), exist_ok=True)
        files, docs = [], {}
        for name, stream in streams:
            documents = split_documents(stream, eos)
            docs[name] = len(documents)
            files += write_litdata(os.path.join(directory, LITDATA_DIR, name), documents, vocab)
        done["litdata"] = {"files": [os.path.relpath(f, directory) for f in files], "documents": docs,
                           "dtype": "uint16" if vocab <= 2**16 else "int32"}
    if "nanogpt" in formats:
        folder = os.path.join(directory, NANOGPT_DIR)
        os.makedirs(folder, exist_ok=True)
        train = write_flat(os.path.join(folder, "train.bin"), [s for _, s in streams], vocab)
        val = write_flat(os.path.join(folder, "val.bin"), heldout_tokens(reader), vocab)
        write_bytes_atomic(pickle.dumps({"vocab_size": vocab}, protocol=4), os.path.join(folder, "meta.pkl"))
        done["nanogpt"] = {"files": [os.path.relpath(p, directory) for p in (train, val)] + [f"{NANOGPT_DIR}/meta.pkl"],
                           "dtype": token_dtype(vocab).name}
    return done
