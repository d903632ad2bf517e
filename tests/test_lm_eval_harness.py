"""EleutherAI lm-evaluation-harness on an `assay export` folder scores MMLU cloze exactly as `assay eval` does.

The harness runs offline: the model is the exported folder, the task a local YAML (docs/trainer.md shows the
same one) reading MMLU rows from a local JSONL, and any attempt to open a network connection fails the test.
Both sides must agree on every detail: the end-of-text token before the context (`add_bos_token=True`), the
truncation length (`max_length` = the token shards' seq_len, which `assay eval` uses), the context
"Question: ...\\nAnswer:" with each answer after a space (`target_delimiter`), and acc_norm's length, the
answer's characters without that space.
"""
import gzip
import json
import logging
import os
import socket

import pytest
from test_trainer_support import build_shards
from typer.testing import CliRunner

from assay.pipelines.cli import app
from assay.trainer.eval_cloze import MMLU_PATH

#: the shards' seq_len, to which `assay eval` truncates (the model's max_seq_len, the harness's default, is 256):
#: 28 of the 40 questions fit, so the end-of-text token before them counts, and 12 are truncated from the left
SEQ_LEN = 128
N_ITEMS = 40
RUN_TOML = """\
[model]
vocab_size = 300
d_model = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
ffn_dim = 64
max_seq_len = 256
[train]
data = "{data}"
out_dir = "{out}"
max_steps = 3
micro_batch = 2
warmup_steps = 2
progress = false
peak_flops = 1e11
"""

#: the task file docs/trainer.md shows, with the data file and the datasets cache put in the test's folder
TASK_YAML = """\
task: assay_mmlu_cloze
dataset_path: json
dataset_kwargs:
  data_files: {data}
  cache_dir: {cache}
test_split: train
output_type: multiple_choice
doc_to_text: "Question: {{{{question.strip()}}}}\\nAnswer:"
doc_to_choice: "{{{{[answer_a.strip(), answer_b.strip(), answer_c.strip(), answer_d.strip()]}}}}"
doc_to_target: "{{{{'ABCD'.index(correct_answer.strip().upper())}}}}"
target_delimiter: " "
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""


def _mmlu_rows(n: int) -> list[dict]:
    """The first question of each subject of the shipped MMLU copy whose answers are short ASCII texts, so
    that no choice is longer than SEQ_LEN tokens (`assay eval` skips such items, the harness does not)."""
    rows, topics = [], set()
    with gzip.open(MMLU_PATH, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            answers = [str(rec[f"answer_{x}"]).strip() for x in "abcd"]
            if rec["topic"] not in topics and all(a and len(a) <= 24 and a.isascii() for a in answers):
                topics.add(rec["topic"])
                rows.append(rec)
                if len(rows) == n:
                    break
    return rows


def _argmax(values) -> int:
    return max(range(len(values)), key=values.__getitem__)


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to look up a host or connect to a network address is recorded and refused."""
    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access in an offline test: {address}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(f"host lookup in an offline test: {host}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_lm_eval_harness_on_an_export_equals_assay_eval_on_mmlu_cloze(tmp_path, monkeypatch, no_network):
    lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is a dev dependency: "
                                                    "pip install -e '.[dev]'")
    import datasets.config
    import torch
    from lm_eval.tasks import TaskManager

    from assay.trainer.checkpoint import load_trained_model
    from assay.trainer.eval_cloze import continuation_logprobs, encode_pair, load_task
    from assay.trainer.tokenizer import eos_id, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # read at import, maybe before this test
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # `assay eval` would take a GPU: both on CPU

    # a tiny model trained by `assay train`, exported by `assay export`
    data, out, hf_dir = str(tmp_path / "data"), str(tmp_path / "out"), str(tmp_path / "hf")
    build_shards(data, seq_len=SEQ_LEN, repeats=2)
    (tmp_path / "run.toml").write_text(RUN_TOML.format(data=data, out=out))
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "run.toml")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", out, "--out", hf_dir])
    assert result.exit_code == 0, result.output

    questions = tmp_path / "mmlu.jsonl"
    questions.write_text("".join(json.dumps(rec) + "\n" for rec in _mmlu_rows(N_ITEMS)))

    # `assay eval`, through the CLI
    eval_json = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", out, "--task", f"mmlu:{questions}", "--json-out", str(eval_json)])
    assert result.exit_code == 0, result.output
    ours = json.loads(eval_json.read_text())["tasks"]["mmlu"]
    assert ours["items"] == N_ITEMS and ours["skipped"] == 0

    # the same scores item by item, with the functions evaluate_cloze uses
    model, _, _ = load_trained_model(out)
    tok = load_tokenizer(os.path.join(data, "tokenizer.json"))
    task = load_task(f"mmlu:{questions}")
    requests = [[encode_pair(tok, item.context, item.delimiter + c, [eos_id(tok)]) for c in item.choices]
                for item in task.items]
    fits = [max(len(ctx) + len(cont) for ctx, cont in pairs) <= SEQ_LEN + 1 for pairs in requests]
    assert 0 < sum(fits) < N_ITEMS  # both the leading end-of-text token and the left truncation are exercised
    scores = [continuation_logprobs(model, pairs, SEQ_LEN, "cpu") for pairs in requests]
    pred = [_argmax(s) for s in scores]
    pred_norm = [_argmax([x / len(c) for x, c in zip(s, item.choices)]) for s, item in zip(scores, task.items)]
    gold = [item.gold for item in task.items]
    assert ours["acc"] == sum(p == g for p, g in zip(pred, gold)) / N_ITEMS
    assert ours["acc_norm"] == sum(p == g for p, g in zip(pred_norm, gold)) / N_ITEMS
    assert len(set(pred)) > 1 and len(set(pred_norm)) > 1  # the predictions vary, so comparing them tells

    # lm-evaluation-harness on the exported folder
    tasks_dir = tmp_path / "lm_eval_tasks"
    tasks_dir.mkdir()
    (tasks_dir / "assay_mmlu_cloze.yaml").write_text(TASK_YAML.format(data=questions, cache=tmp_path / "hf-datasets"))
    # the CLI runs above left a root log handler on CliRunner's closed stderr: keep the harness's logs off it
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    harness = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={hf_dir},dtype=float32,add_bos_token=True,max_length={SEQ_LEN}",
        tasks=["assay_mmlu_cloze"], task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        device="cpu", batch_size=8, log_samples=True)
    samples = sorted(harness["samples"]["assay_mmlu_cloze"], key=lambda s: s["doc_id"])
    assert len(samples) == N_ITEMS
    for item, sample in zip(task.items, samples):  # the very same strings are scored
        assert [tuple(a) for a in sample["arguments"]] == [(item.context, " " + c) for c in item.choices]
        assert sample["target"] == item.gold
    theirs = [[ll for ll, _ in s["filtered_resps"]] for s in samples]
    for a, b in zip(scores, theirs):
        assert a == pytest.approx(b, abs=1e-3)
    assert [_argmax(s) for s in theirs] == pred
    assert [_argmax([x / len(c) for x, c in zip(s, item.choices)]) for s, item in zip(theirs, task.items)] == pred_norm
    assert [s["acc"] for s in samples] == [float(p == g) for p, g in zip(pred, gold)]
    assert [s["acc_norm"] for s in samples] == [float(p == g) for p, g in zip(pred_norm, gold)]
    metrics = harness["results"]["assay_mmlu_cloze"]
    assert metrics["acc,none"] == pytest.approx(ours["acc"])
    assert metrics["acc_norm,none"] == pytest.approx(ours["acc_norm"])
    assert not no_network
