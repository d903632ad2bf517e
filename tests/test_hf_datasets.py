"""Hugging Face `datasets` in and out, with the real library: `assay run` reads folders written by
`save_to_disk` (Arrow) and Hub-style Parquet / JSONL layouts with configurable text and id fields; the outputs
of `assay run` and `assay synth` load with `datasets.load_dataset("parquet", ...)` and carry a dataset card
(README.md with YAML front matter). The mix's card and exports: tests/test_token_export.py."""
import json

import datasets
import pytest
from typer.testing import CliRunner

from assay.curation.document import Document, Rejection
from assay.curation.readers import ReaderConfig, expand_inputs, read_input
from assay.pipelines.cli import app
from assay.pipelines.job.card import read_front_matter

PAGES = [
    "The river carries sand and small stones down to the sea, where the water slows and the sand settles into long "
    "bars that shift with every storm. Fishermen learn where the channels run each spring.",
    "Bread rises because yeast turns sugar into gas; the gluten in the dough holds the bubbles, and the oven's heat "
    "sets the crumb before the gas escapes. A cooler oven gives a denser loaf.",
    "A lever moves a heavy load with a small force when the pivot sits close to the load. The longer arm travels "
    "further, so the work done on both sides is the same, apart from friction.",
    "Der Fluss traegt Sand und kleine Steine bis zum Meer, wo das Wasser langsamer wird und sich der Sand absetzt.",
]
IDS = ["r-1", "b-2", "l-3", "de-4"]


def _docs(path, cfg):
    items = [item for unit in expand_inputs([str(path)], cfg) for item in read_input(unit, cfg)]
    return [i for i in items if isinstance(i, Document)], [i for i in items if isinstance(i, Rejection)]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    ds = datasets.Dataset.from_dict({"content": PAGES, "doc_id": IDS, "n": list(range(len(PAGES)))})
    ds.save_to_disk(str(root / "saved"), num_shards=2)  # several data-*.arrow files
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(root / "dict"))
    (root / "hub" / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "hub" / "data" / "train-00000-of-00001.parquet"))
    ds.select([0]).to_parquet(str(root / "hub" / "data" / "test-00000-of-00001.parquet"))
    ds.to_json(str(root / "hub-jsonl" / "train.jsonl"))
    (root / "hub" / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# a Hub dataset card\n")
    return root


def test_save_to_disk_folder_reads_every_row_with_configured_fields(hf, caplog):
    cfg = ReaderConfig(text_field="content", id_field="doc_id")
    units = expand_inputs([str(hf / "saved")], cfg)
    assert len(units) > 1 and all(u.endswith(".arrow") for u in units)
    docs, rejected = _docs(hf / "saved", cfg)
    assert [(d.id, d.text) for d in docs] == list(zip(IDS, PAGES)) and not rejected
    assert "no known format" not in caplog.text  # state.json / dataset_info.json are metadata, passed over quietly


def test_dataset_dict_split_and_hub_layouts(hf):
    cfg = ReaderConfig(text_field="content", id_field="doc_id", split="test")
    assert [d.id for d in _docs(hf / "dict", cfg)[0]] == ["b-2"]
    assert [d.id for d in _docs(hf / "hub", cfg)[0]] == ["r-1"]  # data/test-00000-of-00001.parquet only
    both = ReaderConfig(text_field="content", id_field="doc_id")
    assert sorted(d.id for d in _docs(hf / "dict", both)[0]) == sorted(IDS + ["b-2"])
    assert [d.text for d in _docs(hf / "hub-jsonl", both)[0]] == PAGES
    with pytest.raises(ValueError, match="split 'validation'"):
        expand_inputs([str(hf / "dict")], ReaderConfig(split="validation"))


def test_wrong_text_field_and_damaged_arrow_are_quarantined(hf, tmp_path):
    docs, rejected = _docs(hf / "saved", ReaderConfig(text_field="body"))
    assert not docs and {r.reason for r in rejected} == {"missing_text_field"}
    assert "content" in rejected[0].detail  # says which columns there are
    arrow = sorted((hf / "saved").glob("*.arrow"))[0]
    cut = tmp_path / "cut.arrow"
    cut.write_bytes(arrow.read_bytes()[:-40])
    docs, rejected = _docs(cut, ReaderConfig(text_field="content"))
    assert [r.reason for r in rejected] == ["unreadable_file"]


@pytest.fixture(scope="module")
def run_output(hf, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    cfg = root / "run.toml"
    cfg.write_text('stages = ["extract", "langid", "dedup"]\n[input.reader]\ntext_field = "content"\n'
                   'id_field = "doc_id"\n[output]\nlicense = "cc-by-4.0"\nhistograms = false\n'
                   '[runner]\nworkers = 1\nmode = "in_memory"\n')
    result = CliRunner().invoke(app, ["run", str(cfg), "-i", str(hf / "saved"), "-o", str(root / "out"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    return root / "out"


def test_run_output_loads_with_datasets_and_has_a_card(run_output, hf, tmp_path):
    docs = datasets.load_dataset("parquet", data_files=str(run_output / "docs" / "*.parquet"), split="train")
    assert sorted(docs["id"]) == ["b-2", "l-3", "r-1"] and set(docs["language"]) == {"en"}
    ledger = datasets.load_dataset("parquet", data_files=str(run_output / "rejected" / "*.parquet"), split="train")
    assert [(r["id"], r["reason"]) for r in ledger] == [("de-4", "language_not_kept")]
    card = (run_output / "README.md").read_text()
    meta = read_front_matter(card)
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en"]
    assert meta["source_datasets"] == [str(hf / "saved")]
    assert meta["assay"]["sizes"]["documents"] == 3 and meta["assay"]["sizes"]["rejected"] == 1
    funnel = {row["stage"]: row for row in meta["assay"]["funnel"]}
    assert funnel["langid"]["rejected"] == {"language_not_kept": 1}
    assert meta["assay"]["config"] == json.loads((run_output / "run.json").read_text())["config"]
    lid = meta["assay"]["models"]["langid.model_path"]
    assert lid["path"].endswith("lid.176.ftz") and len(lid["sha256"]) == 64
    assert not any(k.startswith("classifiers") for k in meta["assay"]["models"])  # the stage did not run
    assert "## Funnel" in card and "| langid | 4 | 3 |" in card
    # the card's `configs` point at docs/*.parquet; a fresh cache: datasets 5.2 reuses a cached folder dataset of
    # the same name and file names from elsewhere
    by_card = datasets.load_dataset(str(run_output), cache_dir=str(tmp_path / "cache"))
    assert sorted(by_card["train"]["id"]) == sorted(docs["id"])


def test_synth_output_loads_with_datasets_and_has_a_card(run_output, tmp_path):
    """`assay synth decontam` (a synth job without a model; the generators' cards come from the same ShardJob code,
    and tests/test_synth_generate.py checks a textbook run's card)."""
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text(json.dumps({"question": PAGES[1]}) + "\n")
    out = tmp_path / "clean"
    result = CliRunner().invoke(app, ["synth", "decontam", "--shards", str(run_output), "--out", str(out),
                                      "--eval-jsonl", str(evalset), "--no-mmlu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    docs = datasets.load_dataset("parquet", data_files=str(out / "docs" / "*.parquet"), split="train")
    ledger = datasets.load_dataset("parquet", data_files=str(out / "rejected" / "*.parquet"), split="train")
    assert sorted(docs["id"]) == ["l-3", "r-1"] and ledger["id"] == ["b-2"]
    meta = read_front_matter((out / "README.md").read_text())
    assert meta["assay"]["job"] == "synth-decontam" and meta["license"] == "other"
    assert meta["source_datasets"] == [str(run_output)]
    assert meta["assay"]["sizes"] == {"documents": 2, "rejected": 1, "bytes_read": meta["assay"]["sizes"]["bytes_read"],
                                      "bytes_kept": meta["assay"]["sizes"]["bytes_kept"]}
