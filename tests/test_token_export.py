"""`assay mix --format megatron --format nanogpt --format litdata`: the mix's tokens read back by megatron-core's own
IndexedDataset, by a reader of the MMIDIDX v1 index written here from the published layout, and by
numpy.memmap as nanoGPT reads train.bin / val.bin, by litdata's StreamingDataset + TokensLoader as LitGPT
reads them; plus the dataset card and held-out Parquet of a mix
loaded with the real `datasets` library."""
import importlib.util
import json
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.pipelines.cli import app
from assay.trainer.token_shards import TokenShardReader, heldout_pools, read_heldout
from assay.trainer.tokenizer import eos_id, load_tokenizer

WORDS = ("river stone valley water sand storm island coast harbour ship sail wind map north river delta marsh "
         "heron reed clay brick kiln oven bread flour mill wheel gear axle cart road bridge arch vault").split()

RECIPE = """
seed = 7
seq_len = 32
heldout_fraction = 0.1
sequences_per_shard = 7
license = "cc-by-4.0"
[tokenizer]
vocab_size = 300
[runner]
workers = 1
mode = "in_memory"
[pools.web]
source = "{root}/pool"
[pools.tail-end]
source = "{root}/pool"
predicate = "length(text) > 200"
[[phases]]
name = "one"
tokens = 1500
weights = {{ web = 1 }}
[[phases]]
name = "two"
tokens = 700
weights = {{ web = 1, "tail-end" = 1 }}
"""


def _pool(root):
    rng = np.random.default_rng(3)
    rows = []
    for i in range(120):
        n = int(rng.integers(8, 60))
        text = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), n)).capitalize() + "."
        if i == 5:
            text += " A literal <|endoftext|> inside a text stays text."
        rows.append({"id": f"doc{i:03d}", "text": text, "source": "test", "url": "", "domain": "", "date": ""})
    write_table_atomic(rows_to_table(rows, doc_schema({})), f"{root}/pool/docs/part-00000-of-00001.parquet")


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    _pool(root)
    (root / "recipe.toml").write_text(RECIPE.format(root=root))
    result = CliRunner().invoke(app, ["mix", str(root / "recipe.toml"), "-o", str(root / "mix"), "-q",
                                      "--format", "megatron", "--format", "nanogpt", "--format", "litdata"])
    assert result.exit_code == 0, result.output
    return root / "mix"


def _packed_stream(reader, phase_id):
    """The phase's rows in packing order, from the trainer's reader (the reference the exports must match)."""
    index = np.asarray(reader.index)
    rows = sorted((int(index[i, 3]), i) for i in range(len(index)) if index[i, 0] == phase_id)
    return np.concatenate([reader.sequence(i) for _, i in rows])


def read_mmidx(prefix):
    """Megatron's MMIDIDX v1 index, read from the published layout: 9-byte magic, u64 version, u8 dtype code,
    u64 sequence count, u64 document count, int32 lengths, int64 byte pointers, int64 document indices."""
    codes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
             8: np.uint16}
    data = open(prefix + ".idx", "rb").read()
    assert data[:9] == b"MMIDIDX\x00\x00"
    version, = struct.unpack("<Q", data[9:17])
    code = data[17]
    n_seq, n_doc = struct.unpack("<QQ", data[18:34])
    off = 34
    lengths = np.frombuffer(data, np.int32, n_seq, off)
    off += 4 * n_seq
    pointers = np.frombuffer(data, np.int64, n_seq, off)
    off += 8 * n_seq
    doc_idx = np.frombuffer(data, np.int64, n_doc, off)
    assert off + 8 * n_doc == len(data)
    dtype = np.dtype(codes[code])
    binary = np.memmap(prefix + ".bin", dtype=dtype, mode="r")
    seqs = [np.asarray(binary[p // dtype.itemsize: p // dtype.itemsize + n]) for p, n in zip(pointers, lengths)]
    return version, dtype, doc_idx, seqs


def test_megatron_export_holds_each_phase_document_by_document(mix):
    reader = TokenShardReader(str(mix))
    eos = int(reader.manifest["eos_id"])
    for phase_id, phase in enumerate(reader.manifest["phases"]):
        prefix = str(mix / "megatron" / f"{phase['name']}_text_document")
        version, dtype, doc_idx, seqs = read_mmidx(prefix)
        assert version == 1 and dtype == np.uint16
        assert doc_idx.tolist() == list(range(len(seqs) + 1))  # one sequence per document
        stream = _packed_stream(reader, phase_id)
        assert np.array_equal(np.concatenate(seqs), stream)  # exactly the phase's tokens, nothing added or lost
        assert all(s[-1] == eos and (s[:-1] != eos).all() for s in seqs[:-1])  # one EOS, at each document's end
        assert (seqs[-1][:-1] != eos).all()  # the last one is cut where the phase ends (EOS only if it fit)
        assert len(seqs) == int((stream == eos).sum()) + (stream[-1] != eos)


def megatron_read(prefix: str) -> tuple[list[int], list[list[int]]]:
    """(document indices, sequences) as megatron-core's IndexedDataset reads them, in a child process: importing
    megatron-core adds numpy arrays and more to torch's weights_only allow-list for the whole process, which
    would weaken every later checkpoint test of the suite."""
    if importlib.util.find_spec("megatron") is None:  # found, not imported
        pytest.skip("megatron-core is not installed")
    code = ("import json, sys\n"
            "from megatron.core.datasets.indexed_dataset import IndexedDataset\n"
            "ds = IndexedDataset(sys.argv[1])\n"
            "print(json.dumps([ds.document_indices.tolist(), [ds[i].tolist() for i in range(len(ds))]]))\n")
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code, prefix], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    doc_idx, seqs = json.loads(res.stdout.strip().splitlines()[-1])
    return doc_idx, seqs


def test_megatron_core_reads_the_export(mix):
    reader = TokenShardReader(str(mix))
    for phase_id, phase in enumerate(reader.manifest["phases"]):
        prefix = str(mix / "megatron" / f"{phase['name']}_text_document")
        ds_doc_idx, ds_seqs = megatron_read(prefix)
        _, _, doc_idx, seqs = read_mmidx(prefix)
        assert len(ds_seqs) == len(seqs)
        assert np.array_equal(np.array(ds_doc_idx), doc_idx)
        assert all(np.array_equal(np.array(a), b) for a, b in zip(ds_seqs, seqs))
        assert np.array_equal(np.concatenate([np.array(a) for a in ds_seqs]), _packed_stream(reader, phase_id))


def test_nanogpt_files_are_the_packed_stream_and_the_tokenized_heldout(mix):
    reader = TokenShardReader(str(mix))
    train = np.memmap(mix / "nanogpt" / "train.bin", dtype=np.uint16, mode="r")  # as nanoGPT's get_batch reads it
    expected = np.concatenate([_packed_stream(reader, i) for i in range(len(reader.manifest["phases"]))])
    assert np.array_equal(train, expected)
    assert len(train) == reader.manifest["tokens"]
    tok = load_tokenizer(reader.tokenizer_path)
    val = np.memmap(mix / "nanogpt" / "val.bin", dtype=np.uint16, mode="r")
    assert list(heldout_pools(str(mix))) == ["tail-end", "web"]  # by pool name
    texts = [t for path in heldout_pools(str(mix)).values() for t in read_heldout(path)]
    assert texts, "the recipe holds documents out"
    docs = np.split(np.asarray(val), np.nonzero(np.asarray(val) == eos_id(tok))[0][:-1] + 1)
    assert [tok.decode(d[:-1].tolist(), skip_special_tokens=False) for d in docs] == texts
    assert pickle.loads((mix / "nanogpt" / "meta.pkl").read_bytes()) == {"vocab_size": reader.vocab_size}


NO_LITDATA = "litdata is not installed (pip install --no-deps 'litdata>=0.2.76,<0.3', as `make install` does)"


def _litdata_blocks(folder, block_size: int) -> list[list[int]]:
    """What LitGPT's training loop gets: litdata's StreamingDataset over the folder, TokensLoader blocks."""
    from litdata import StreamingDataset
    from litdata.streaming.item_loader import TokensLoader

    ds = StreamingDataset(str(folder), item_loader=TokensLoader(block_size=block_size), shuffle=False)
    return [ds[i].tolist() for i in range(len(ds))], ds[0].dtype


def test_litdata_reads_each_phase_as_litgpt_does(mix):
    pytest.importorskip("litdata", reason=NO_LITDATA)
    import torch

    reader = TokenShardReader(str(mix))
    eos = int(reader.manifest["eos_id"])
    seq_len = int(reader.manifest["seq_len"])
    for phase_id, phase in enumerate(reader.manifest["phases"]):
        stream = _packed_stream(reader, phase_id)
        blocks, dtype = _litdata_blocks(mix / "litdata" / phase["name"], seq_len + 1)  # LitGPT's block size
        assert dtype == torch.uint16 and blocks and all(len(b) == seq_len + 1 for b in blocks)
        n = len(blocks) * (seq_len + 1)
        assert len(stream) - n < seq_len + 1  # only the tail that fills no block is left out
        assert np.concatenate(blocks).tolist() == stream[:n].tolist()  # the phase's tokens, in packing order
        index = json.loads((mix / "litdata" / phase["name"] / "index.json").read_text())
        documents = sum(c["chunk_size"] for c in index["chunks"])
        assert documents == int((stream == eos).sum()) + (stream[-1] != eos)  # one item per document


def test_litdata_uses_int32_for_large_vocabularies(tmp_path):
    pytest.importorskip("litdata", reason=NO_LITDATA)
    import torch

    from assay.trainer.token_export import write_litdata

    docs = [np.array([70_000, 5, 0]), np.array([65_536, 0]), np.array([1, 2, 3, 69_999])]
    files = write_litdata(str(tmp_path / "big"), docs, vocab_size=70_001)
    assert {f.rsplit("/", 1)[1] for f in files} >= {"index.json"}
    blocks, dtype = _litdata_blocks(tmp_path / "big", 3)
    assert dtype == torch.int32 and sum(blocks, []) == np.concatenate(docs)[:9].tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".litdata-")]  # no temporary folder left


def test_mix_card_and_heldout_load_with_datasets(mix, tmp_path):
    import datasets

    from assay.pipelines.job.card import read_front_matter

    meta = read_front_matter((mix / "README.md").read_text())
    assert meta["license"] == "cc-by-4.0"
    assert meta["assay"]["fingerprint"] == TokenShardReader(str(mix)).fingerprint
    assert set(meta["assay"]["exports"]) == {"megatron", "nanogpt", "litdata"}
    assert all((mix / f).is_file() for e in meta["assay"]["exports"].values() for f in e["files"])
    web = datasets.load_dataset("parquet", data_files=str(mix / "heldout" / "web.parquet"), split="train")
    assert web["text"] == read_heldout(str(mix / "heldout" / "web.parquet"))
    # the card's `configs` name one split per pool
    by_card = datasets.load_dataset(str(mix), "heldout", cache_dir=str(tmp_path / "cache"))
    assert set(by_card) == {"web", "tail_end"} and by_card["web"]["id"] == web["id"]


def test_unknown_format_is_refused_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["mix", "no-such-recipe.toml", "--format", "litgpt"])
    assert result.exit_code == 2 and "unknown format" in result.output and "litgpt" in result.output


def test_large_vocabularies_use_int32_megatron_and_uint32_flat_files(tmp_path):
    from assay.trainer.token_export import write_flat, write_megatron

    docs = [np.array([70_000, 5, 0]), np.array([65_536, 0]), np.array([1, 2, 3, 69_999])]
    prefix = str(tmp_path / "big_text_document")
    write_megatron(prefix, docs, vocab_size=70_001)
    version, dtype, doc_idx, seqs = read_mmidx(prefix)
    assert dtype == np.int32 and doc_idx.tolist() == [0, 1, 2, 3]
    assert [s.tolist() for s in seqs] == [d.tolist() for d in docs]
    flat = write_flat(str(tmp_path / "train.bin"), docs, vocab_size=70_001)
    assert np.memmap(flat, dtype=np.uint32, mode="r").tolist() == np.concatenate(docs).tolist()
    assert megatron_read(prefix)[1] == [d.tolist() for d in docs]
