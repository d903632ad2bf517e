"""The token-shard format: writer and reader round trip, rank split, exact resume, integrity checks, the
stored row length, the held-out files and the manifest read alone."""
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from assay.trainer.token_shards import (
    HELDOUT_SCHEMA,
    MANIFEST_FILE,
    ShardFolder,
    TokenShardError,
    TokenShardReader,
    TokenShardWriter,
    heldout_file,
    heldout_pools,
    read_heldout,
    row_length,
    token_dtype,
    write_heldout,
)

SEQ_LEN = 15


def _write(directory, vocab=1000, phases=(("p1", 23), ("p2", 14)), per_shard=10, seed=0):
    rng = np.random.default_rng(seed)
    writer = TokenShardWriter(str(directory), SEQ_LEN, vocab, sequences_per_shard=per_shard)
    written = []
    for name, n in phases:
        rows = rng.integers(0, vocab, size=(n, SEQ_LEN + 1))
        writer.add(rows, name, packed_positions=np.arange(n)[::-1])
        written.append(rows)
    (directory / "tokenizer.json").write_text("{}")
    manifest = writer.close(extra={"note": "test"}, files=["tokenizer.json"])
    return manifest, np.concatenate(written)


def test_round_trip_in_training_order(tmp_path):
    manifest, rows = _write(tmp_path)
    reader = TokenShardReader(str(tmp_path))
    assert len(reader) == len(rows) == manifest["sequences"]
    got = np.stack(list(reader))
    assert got.dtype == np.int64 and got.shape == (len(rows), SEQ_LEN + 1)
    np.testing.assert_array_equal(got, rows)
    assert [p["name"] for p in manifest["phases"]] == ["p1", "p2"]
    assert manifest["phases"][1]["first_sequence"] == 23
    assert reader.phase_of(22) == "p1" and reader.phase_of(23) == "p2"
    assert manifest["dtype"] == "uint16" and len(manifest["shards"]) == 4
    disk = sum(os.path.getsize(tmp_path / s["file"]) for s in manifest["shards"])
    assert disk == manifest["tokens"] * 2
    assert not [f for f in os.listdir(tmp_path / "shards") if ".tmp-" in f]


def test_uint32_when_vocab_exceeds_16_bits(tmp_path):
    assert token_dtype(2**16) == np.uint16 and token_dtype(2**16 + 1) == np.uint32
    manifest, rows = _write(tmp_path, vocab=100_000, phases=(("p1", 5),))
    assert manifest["dtype"] == "uint32"
    assert rows.max() >= 2**16  # the test data really needs 32 bits
    np.testing.assert_array_equal(TokenShardReader(str(tmp_path)).next_batch(5), rows)


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_rank_split_covers_every_sequence_once(tmp_path, world_size):
    _, rows = _write(tmp_path)
    seen = []
    lengths = []
    for rank in range(world_size):
        reader = TokenShardReader(str(tmp_path), rank=rank, world_size=world_size)
        lengths.append(len(reader))
        seen.extend(tuple(s) for s in reader)
    assert sorted(seen) == sorted(tuple(r) for r in rows)
    assert len(set(seen)) == len(rows)
    assert max(lengths) - min(lengths) <= 1


def test_resume_mid_way_gives_the_same_stream(tmp_path):
    _write(tmp_path)
    full = TokenShardReader(str(tmp_path), rank=1, world_size=2)
    first = full.next_batch(4)
    state = full.state_dict()
    rest = np.concatenate(list(_batches(full, 3)))
    resumed = TokenShardReader(str(tmp_path), rank=1, world_size=2)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # state survives a JSON checkpoint
    again = np.concatenate(list(_batches(resumed, 3)))
    np.testing.assert_array_equal(rest, again)
    assert len(first) + len(rest) == len(full)
    with pytest.raises(StopIteration):
        resumed.next_batch(1)


def _batches(reader, size):
    while True:
        try:
            yield reader.next_batch(size)
        except StopIteration:
            return


def test_resume_state_from_another_layout_is_refused(tmp_path):
    _write(tmp_path)
    state = TokenShardReader(str(tmp_path), rank=0, world_size=2).state_dict()
    with pytest.raises(TokenShardError, match="rank 0 of 2"):
        TokenShardReader(str(tmp_path), rank=0, world_size=1).load_state_dict(state)
    with pytest.raises(TokenShardError, match="different token-shard directory"):
        TokenShardReader(str(tmp_path)).load_state_dict(dict(state, fingerprint="0" * 64, world_size=1))


def test_corrupted_shard_names_the_file(tmp_path):
    manifest, _ = _write(tmp_path)
    path = tmp_path / manifest["shards"][2]["file"]
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TokenShardError, match="shard-00002.bin"):
        TokenShardReader(str(tmp_path))
    TokenShardReader(str(tmp_path), verify=False)  # opt-out still opens


def test_edited_manifest_and_missing_files_are_refused(tmp_path):
    manifest, _ = _write(tmp_path)
    edited = dict(manifest, seq_len=SEQ_LEN + 1)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(edited))
    with pytest.raises(TokenShardError, match="fingerprint"):
        TokenShardReader(str(tmp_path))
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    os.remove(tmp_path / "tokenizer.json")
    with pytest.raises(TokenShardError, match="tokenizer.json is missing"):
        TokenShardReader(str(tmp_path))
    with pytest.raises(TokenShardError, match="assay mix"):
        TokenShardReader(str(tmp_path / "nowhere"))


def test_writer_rejects_bad_input(tmp_path):
    writer = TokenShardWriter(str(tmp_path), SEQ_LEN, vocab_size=50)
    with pytest.raises(TokenShardError, match=r"\[n, 16\]"):
        writer.add(np.zeros((2, SEQ_LEN)), "p1")
    with pytest.raises(TokenShardError, match="token ids"):
        writer.add(np.full((2, SEQ_LEN + 1), 50), "p1")
    writer.add(np.zeros((2, SEQ_LEN + 1), int), "p1")
    writer.add(np.zeros((1, SEQ_LEN + 1), int), "p2")
    with pytest.raises(TokenShardError, match="already written"):
        writer.add(np.zeros((1, SEQ_LEN + 1), int), "p1")
    with pytest.raises(TokenShardError, match="no sequences"):
        TokenShardWriter(str(tmp_path / "empty"), SEQ_LEN, 50).close()


def test_a_stored_row_is_seq_len_inputs_plus_one_target(tmp_path):
    assert row_length(SEQ_LEN) == SEQ_LEN + 1
    writer = TokenShardWriter(str(tmp_path), SEQ_LEN, 100)
    with pytest.raises(TokenShardError, match=rf"sequences must be \[n, {SEQ_LEN + 1}\]"):
        writer.add(np.zeros((2, SEQ_LEN), np.int64), "p1")  # seq_len tokens alone: no target for the last one
    writer.add(np.arange(2 * row_length(SEQ_LEN)).reshape(2, -1) % 100, "p1")
    manifest = writer.close()
    assert manifest["tokens"] == manifest["phases"][0]["tokens"] == 2 * row_length(SEQ_LEN)
    reader = TokenShardReader(str(tmp_path))
    assert reader.seq_len == SEQ_LEN and reader.sequence(1).shape == (row_length(SEQ_LEN),)


def test_heldout_files_round_trip_sorted_by_id(tmp_path):
    path = write_heldout(str(tmp_path), "web", [("doc-b", "second text"), ("doc-a", "first text")])
    empty = write_heldout(str(tmp_path), "news", [])  # a pool with nothing held out still has its file
    assert path == os.path.join(str(tmp_path), heldout_file("web")) and heldout_file("web") == "heldout/web.parquet"
    (tmp_path / "heldout" / "edu.parquet.tmp-0123").write_bytes(b"half a file")  # an unfinished write
    assert heldout_pools(str(tmp_path)) == {"news": empty, "web": path}
    assert pq.read_schema(path).equals(HELDOUT_SCHEMA)
    assert pq.read_table(path).column("id").to_pylist() == ["doc-a", "doc-b"]
    assert read_heldout(path) == ["first text", "second text"] and read_heldout(path, 1) == ["first text"]
    assert read_heldout(empty) == [] and heldout_pools(str(tmp_path / "nowhere")) == {}
    write_heldout(str(tmp_path), "web", [("doc-c", "replaced")])
    assert read_heldout(path) == ["replaced"] and sorted(os.listdir(tmp_path / "heldout")) == [
        "edu.parquet.tmp-0123", "news.parquet", "web.parquet"]


def test_a_shard_folder_is_read_from_its_manifest_alone(tmp_path):
    with pytest.raises(TokenShardError, match="not a finished token-shard directory"):
        ShardFolder(str(tmp_path))
    assert not ShardFolder.is_finished(str(tmp_path))
    manifest, _ = _write(tmp_path, vocab=700)
    (tmp_path / "shards" / "shard-00000.bin").write_bytes(b"")  # not read: no checksum checked here
    folder = ShardFolder(str(tmp_path))
    assert ShardFolder.is_finished(str(tmp_path)) and folder.manifest == manifest
    assert (folder.seq_len, folder.vocab_size, folder.fingerprint) == (SEQ_LEN, 700, manifest["fingerprint"])
    assert folder.tokenizer_path == os.path.join(str(tmp_path), "tokenizer.json")
    with pytest.raises(TokenShardError, match="checksum mismatch"):
        TokenShardReader(str(tmp_path))
