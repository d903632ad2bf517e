"""The token-shard format, defined once: the writer `assay mix` uses and the reader the trainer uses.

A token-shard directory holds
    manifest.json               what is inside and how it was made; its `fingerprint` covers everything else
    tokenizer.json              the tokenizer the ids belong to
    index.npy                   int64 [n_sequences, 4]: phase, shard, row in shard, position in the packed stream
    shards/shard-00000.bin      raw little-endian tokens, `seq_len + 1` per sequence, uint16 when the
                                vocabulary fits in 16 bits, else uint32 (memory-mapped by the reader)
    heldout/<pool>.parquet      held-out documents (id, text) sorted by id, never in training
Sequences are stored in training order (phase by phase, shuffled inside a phase), so shard i row r is
training step material in order. Every file's sha256 is in the manifest; the reader checks them and the
fingerprint on open, so a trainer never silently trains on a changed or half-copied dataset.

Rank split: rank r of w reads global sequences r, r + w, r + 2w, ... Every sequence is read by exactly one
rank; when the count is not a multiple of w the first `n % w` ranks get one sequence more (`len` differs
by at most one between ranks; a trainer that needs equal steps stops at the smallest `len`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.groundwork.atomic import atomic_path, write_bytes_atomic, write_json_atomic

FORMAT_NAME = "assay-token-shards"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.npy"
SHARDS_DIR = "shards"
TOKENIZER_FILE = "tokenizer.json"
HELDOUT_DIR = "heldout"
INDEX_COLUMNS = ("phase", "shard", "row", "packed_position")
HELDOUT_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])


class TokenShardError(ValueError):
    """A token-shard directory is incomplete, changed since it was written, or used inconsistently."""


def row_length(seq_len: int) -> int:
    """Tokens stored per sequence: `seq_len` inputs and one more, the last input's target (a trainer reads
    inputs row[:-1] and targets row[1:])."""
    return seq_len + 1


def fits_uint16(vocab_size: int) -> bool:
    """Every id of the vocabulary (0..vocab_size-1) fits in 16 bits: tokens are stored as uint16, as nanoGPT's
    and Megatron's own preprocessing store them, else in 32 bits."""
    return vocab_size <= 2**16


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if fits_uint16(vocab_size) else np.dtype("<u4")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_fingerprint(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the manifest without its fingerprint (covers every file checksum)."""
    body = {k: v for k, v in manifest.items() if k != "fingerprint"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class ShardFolder:
    """A finished token-shard folder as its manifest describes it (checksums unchecked: TokenShardReader
    checks them): what evaluation and export need without reading any tokens."""

    def __init__(self, directory: str):
        self.directory = directory
        path = os.path.join(directory, MANIFEST_FILE)
        if not os.path.isfile(path):
            raise TokenShardError(f"{path} not found: {directory!r} is not a finished token-shard directory; "
                                  "run `assay mix RECIPE --output DIR` (an interrupted run leaves no manifest)")
        with open(path, encoding="utf-8") as fh:
            self.manifest: dict[str, Any] = json.load(fh)
        if self.manifest.get("format") != FORMAT_NAME or self.manifest.get("version") != FORMAT_VERSION:
            raise TokenShardError(f"{path}: not an {FORMAT_NAME} v{FORMAT_VERSION} manifest")

    @staticmethod
    def is_finished(directory: str) -> bool:
        """Whether `directory` holds a manifest (written last, so only a finished folder has one)."""
        return os.path.isfile(os.path.join(directory, MANIFEST_FILE))

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def tokenizer_path(self) -> str:
        return os.path.join(self.directory, self.manifest["tokenizer"])


def heldout_file(pool: str) -> str:
    """A pool's held-out file, relative to the folder (as the manifest lists it)."""
    return f"{HELDOUT_DIR}/{pool}.parquet"


def write_heldout(directory: str, pool: str, docs: Iterable[tuple[str, str]]) -> str:
    """Write `pool`'s held-out documents, (id, text) pairs, sorted by id as <directory>/heldout/<pool>.parquet,
    atomically; returns its path. A pool with none still gets a file, so every pool has one."""
    rows = sorted(docs)
    table = (pa.Table.from_pydict({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}, schema=HELDOUT_SCHEMA)
             if rows else HELDOUT_SCHEMA.empty_table())
    path = os.path.join(directory, heldout_file(pool))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=10_000)
    return path


def heldout_pools(directory: str) -> dict[str, str]:
    """{pool: path} of the held-out files of a token-shard folder (or of a folder laid out alike), by name."""
    folder = os.path.join(directory, HELDOUT_DIR)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {n[: -len(".parquet")]: os.path.join(folder, n) for n in names
            if n.endswith(".parquet") and not n.startswith(".")}


def read_heldout(path: str, limit: int | None = None) -> list[str]:
    """The texts of a held-out file in stored order, the first `limit` of them."""
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()[:limit]


class TokenShardWriter:
    """Append packed sequences phase by phase; `close` writes the index and, last, the manifest.

    Each shard is written under a temporary name and renamed when full, and the manifest appears only at
    the end, so a directory without manifest.json is unfinished and the reader refuses it.
    """

    def __init__(self, directory: str, seq_len: int, vocab_size: int, sequences_per_shard: int = 8192):
        if seq_len < 1 or sequences_per_shard < 1:
            raise TokenShardError("seq_len and sequences_per_shard must be >= 1, "
                                  f"got {seq_len}, {sequences_per_shard}")
        self.directory, self.seq_len, self.vocab_size = directory, seq_len, vocab_size
        self.per_shard = sequences_per_shard
        self.dtype = token_dtype(vocab_size)
        self._shards: list[dict[str, Any]] = []
        self._index: list[np.ndarray] = []
        self._phases: list[dict[str, Any]] = []
        self._fh = None
        self._rows_in_shard = 0
        self._total = 0
        os.makedirs(os.path.join(directory, SHARDS_DIR), exist_ok=True)

    def add(self, sequences: np.ndarray, phase: str, packed_positions: np.ndarray | None = None) -> None:
        """Append sequences [n, seq_len + 1] of `phase` (phases must come in training order, each once)."""
        sequences = np.asarray(sequences)
        if sequences.ndim != 2 or sequences.shape[1] != row_length(self.seq_len):
            raise TokenShardError(f"sequences must be [n, {row_length(self.seq_len)}], got {list(sequences.shape)}")
        if sequences.size and (sequences.min() < 0 or sequences.max() >= self.vocab_size):
            raise TokenShardError(f"token ids must lie in [0, {self.vocab_size}); got "
                                  f"{sequences.min()}..{sequences.max()}")
        if not self._phases or self._phases[-1]["name"] != phase:
            if any(p["name"] == phase for p in self._phases):
                raise TokenShardError(f"phase {phase!r} was already written; write each phase's sequences together")
            self._phases.append({"name": phase, "first_sequence": self._total, "sequences": 0})
        n = len(sequences)
        positions = np.arange(n) if packed_positions is None else np.asarray(packed_positions)
        phase_id = len(self._phases) - 1
        data = sequences.astype(self.dtype, copy=False)
        done = 0
        while done < n:
            if self._fh is None:
                self._open_shard()
            take = min(n - done, self.per_shard - self._rows_in_shard)
            self._fh.write(np.ascontiguousarray(data[done:done + take]).tobytes())
            shard = len(self._shards) - 1
            rows = np.arange(self._rows_in_shard, self._rows_in_shard + take)
            self._index.append(np.stack([np.full(take, phase_id), np.full(take, shard), rows,
                                         positions[done:done + take]], axis=1).astype(np.int64))
            self._rows_in_shard += take
            self._shards[-1]["sequences"] += take
            done += take
            if self._rows_in_shard == self.per_shard:
                self._close_shard()
        self._phases[-1]["sequences"] += n
        self._total += n

    def _open_shard(self) -> None:
        name = f"{SHARDS_DIR}/shard-{len(self._shards):05d}.bin"
        self._shard_file = contextlib.ExitStack()  # closing it closes the file, then renames it into place
        tmp = self._shard_file.enter_context(atomic_path(os.path.join(self.directory, name)))
        self._fh = self._shard_file.enter_context(open(tmp, "wb"))
        self._rows_in_shard = 0
        self._shards.append({"file": name, "sequences": 0})

    def _close_shard(self) -> None:
        self._shard_file.close()
        self._fh = None
        entry = self._shards[-1]
        entry["tokens"] = entry["sequences"] * row_length(self.seq_len)
        entry["sha256"] = file_sha256(os.path.join(self.directory, entry["file"]))

    def close(self, extra: dict[str, Any] | None = None, phase_info: dict[str, dict[str, Any]] | None = None,
              files: list[str] | None = None) -> dict[str, Any]:
        """Finish: index, then manifest (with `extra` keys, per-phase `phase_info`, and checksums of `files`,
        paths relative to the directory such as tokenizer.json and heldout files). Returns the manifest."""
        if self._fh is not None:
            self._close_shard()
        if self._total == 0:
            raise TokenShardError("no sequences were written; a token-shard directory needs at least one")
        index = np.concatenate(self._index) if self._index else np.zeros((0, 4), np.int64)
        buf = _npy_bytes(index)
        write_bytes_atomic(buf, os.path.join(self.directory, INDEX_FILE))
        phases = []
        for p in self._phases:
            entry = dict(p, tokens=p["sequences"] * row_length(self.seq_len))
            entry.update((phase_info or {}).get(p["name"], {}))
            phases.append(entry)
        checked = {name: file_sha256(os.path.join(self.directory, name)) for name in sorted(files or [])}
        manifest = dict(extra or {})
        manifest.update({
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
            "dtype": self.dtype.name,
            "tokenizer": manifest.get("tokenizer", TOKENIZER_FILE),
            "sequences": self._total,
            "tokens": self._total * row_length(self.seq_len),
            "phases": phases,
            "shards": self._shards,
            "index": {"file": INDEX_FILE, "columns": list(INDEX_COLUMNS), "sha256": hashlib.sha256(buf).hexdigest()},
            "files": checked,
        })
        manifest["fingerprint"] = manifest_fingerprint(manifest)
        write_json_atomic(manifest, os.path.join(self.directory, MANIFEST_FILE))
        return manifest


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


class SequenceCursor:
    """The resumable iteration every training stream shares: subclasses give `__len__`, `sequence(local)`,
    `fingerprint`, `rank`, `world_size` and start `_pos` at 0; this class walks them in order, batches them,
    and saves / restores the position (checking it belongs to the same data and rank layout)."""

    #: names the data in a mismatched-resume error, and says what to do instead
    data_name = "token-shard directory"
    resume_hint = "resume with the data the run started with"
    _pos: int
    rank: int
    world_size: int

    @property
    def position(self) -> int:
        return self._pos

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        if self._pos >= len(self):
            raise StopIteration
        seq = self.sequence(self._pos)
        self._pos += 1
        return seq

    def next_batch(self, batch_size: int) -> np.ndarray:
        """The next `batch_size` sequences as [b, seq_len + 1] int64; the last batch may be smaller;
        StopIteration once every sequence of this rank was returned."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._pos >= len(self):
            raise StopIteration
        end = min(self._pos + batch_size, len(self))
        batch = np.stack([self.sequence(i) for i in range(self._pos, end)])
        self._pos = end
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rank": self.rank, "world_size": self.world_size,
                "position": self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise TokenShardError(f"resume state belongs to a different {self.data_name} (fingerprint "
                                  f"{str(state.get('fingerprint'))[:12]} != {self.fingerprint[:12]}); "
                                  f"{self.resume_hint}")
        if (state.get("rank"), state.get("world_size")) != (self.rank, self.world_size):
            raise TokenShardError(f"resume state is for rank {state.get('rank')} of {state.get('world_size')}, "
                                  f"this reader is rank {self.rank} of {self.world_size}; resume with the same layout")
        pos = int(state["position"])
        if not 0 <= pos <= len(self):
            raise TokenShardError(f"resume position {pos} is outside 0..{len(self)}")
        self._pos = pos


class TokenShardReader(ShardFolder, SequenceCursor):
    """Training-order sequences of one rank, as int64 arrays of seq_len + 1 tokens, resumable exactly.

    Iterating (or `next_batch`) advances the position; `state_dict()` / `load_state_dict()` save and
    restore it, so a resumed run sees exactly the sequences the interrupted run had not yet seen.
    """

    def __init__(self, directory: str, rank: int = 0, world_size: int = 1, verify: bool = True):
        if world_size < 1 or not 0 <= rank < world_size:
            raise TokenShardError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        super().__init__(directory)
        self.rank, self.world_size = rank, world_size
        if verify:
            self._verify()
        self.dtype = np.dtype(self.manifest["dtype"])
        self.index = np.load(os.path.join(directory, INDEX_FILE), mmap_mode="r", allow_pickle=False)
        self._shards = [
            np.memmap(os.path.join(directory, s["file"]), dtype=self.dtype, mode="r",
                      shape=(s["sequences"], row_length(self.seq_len)))
            for s in self.manifest["shards"]
        ]
        total = int(self.manifest["sequences"])
        if len(self.index) != total:
            raise TokenShardError(f"{INDEX_FILE} has {len(self.index)} rows but the manifest says {total} sequences")
        self._len = len(range(rank, total, world_size))
        self._pos = 0

    def _verify(self) -> None:
        m = self.manifest
        if manifest_fingerprint(m) != m.get("fingerprint"):
            raise TokenShardError(f"{self.directory}/{MANIFEST_FILE}: fingerprint does not match its contents; "
                                  "the manifest was edited: re-run `assay mix` to rebuild the directory")
        expected = {s["file"]: s["sha256"] for s in m["shards"]}
        expected[m["index"]["file"]] = m["index"]["sha256"]
        expected.update(m.get("files", {}))
        for name, digest in expected.items():
            path = os.path.join(self.directory, name)
            if not os.path.isfile(path):
                raise TokenShardError(f"{path} is missing; copy the whole directory or re-run `assay mix`")
            if file_sha256(path) != digest:
                raise TokenShardError(f"checksum mismatch in {path}: the file changed or was copied partly; "
                                      "copy it again or re-run `assay mix`")

    def __len__(self) -> int:
        return self._len

    def _global(self, local: int) -> int:
        return self.rank + local * self.world_size

    def sequence(self, local: int) -> np.ndarray:
        """This rank's `local`-th sequence (random access; does not move the position)."""
        if not 0 <= local < self._len:
            raise IndexError(f"sequence {local} out of range for {self._len} sequences on rank {self.rank}")
        _, shard, row, _ = self.index[self._global(local)]
        return np.asarray(self._shards[int(shard)][int(row)], dtype=np.int64)

    def stored_row(self, shard: int, row: int) -> np.ndarray:
        """Row `row` of shard `shard` as stored (the index's columns 1 and 2 name it), in the stored dtype."""
        return np.asarray(self._shards[shard][row])

    def phase_of(self, local: int) -> str:
        return self.manifest["phases"][int(self.index[self._global(local)][0])]["name"]

