"""`assay train` / `assay eval` end to end, including a real SIGKILL mid-run and an exact resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_trainer_support import build_shards
from typer.testing import CliRunner

from assay.pipelines.cli import app
from assay.trainer.checkpoint import latest_checkpoint, load_checkpoint
from assay.trainer.metrics import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = ('[model]\nvocab_size = 300\nd_model = 32\nn_layers = 2\nn_heads = 4\nn_kv_heads = 2\nffn_dim = 64\n'
         'max_seq_len = 64\n')


#: [model] additions: a blocksparse layer pattern, and MoE with SparseMixer routing and input jitter
FAMILIES = {"dense": "", "blocksparse": "dense_every = 2\nblock_size = 4\nlocal_blocks = 2\nvertical_stride = 4\n",
            "moe": "n_experts = 4\ntop_k = 2\nnorm = \"layer\"\ninput_jitter = 0.01\naux_loss_coef = 0.01\n"}


def _config(path, data, out, model_extra="", default_peak=False, **train):
    lines = [MODEL + model_extra, "[train]", f'data = "{data}"', f'out_dir = "{out}"', "micro_batch = 2",
             "progress = false", "warmup_steps = 2"] + ([] if default_peak else ["peak_flops = 1e11"])
    lines += [f"{k} = {json.dumps(v)}" for k, v in train.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_train_then_eval_with_a_task(tmp_path):
    data = str(tmp_path / "data")
    build_shards(data, seq_len=16, repeats=2)
    cfg = _config(tmp_path / "run.toml", data, str(tmp_path / "out"), max_steps=3)
    runner = CliRunner()
    result = runner.invoke(app, ["train", cfg])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and "step 3/3" in result.output
    task = tmp_path / "task.jsonl"
    task.write_text(json.dumps({"context": "Water boils at", "choices": [" one hundred", " zero"], "gold": 0}) + "\n")
    out_json = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(tmp_path / "out"), "--task", str(task), "--json-out", str(out_json)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out_json.read_text())
    assert saved["checkpoint_step"] == 3 and saved["tasks"]["task"]["items"] == 1
    assert set(saved["heldout"]) == {"edu", "web"}


def test_errors_say_what_to_do(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "no such config file" in result.output  # groundwork.config names the missing file
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "assay train" in result.output
    cfg = _config(tmp_path / "bad.toml", str(tmp_path / "no-shards"), str(tmp_path / "o"))
    result = runner.invoke(app, ["train", cfg])
    assert result.exit_code == 2 and "assay mix" in result.output


def _ckpt_step(out: str) -> int:
    path = latest_checkpoint(out)
    return int(os.path.basename(path)[5:12]) if path else 0


#: every run of the kill test is its own process with the same thread count: float sums over threads (MoE
#: scatter, matmul) are reproducible for a fixed count, and pytest's own process may have changed torch's
TRAIN_ENV = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train_process(cfg: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "train", cfg], cwd=REPO, env=TRAIN_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, family):
    """Every model family, with the config defaults (the matmul peak measured at start, not configured)."""
    total = 12
    common = dict(max_steps=400, checkpoint_every=1, keep_checkpoints=2, synthetic_sequences=2000,
                  synthetic_seq_len=32, model_extra=FAMILIES[family], default_peak=True)
    ref = _config(tmp_path / "ref.toml", "synthetic", str(tmp_path / "ref"), stop_after=total, **common)
    proc = _train_process(ref)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    out = str(tmp_path / "killed")
    cfg = _config(tmp_path / "run.toml", "synthetic", out, **common)
    proc = _train_process(cfg)
    deadline = time.time() + 120
    while time.time() < deadline and _ckpt_step(out) < 4:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _ckpt_step(out)
    assert 4 <= done < total
    cfg = _config(tmp_path / "resume.toml", "synthetic", out, stop_after=total - done, **common)
    proc = _train_process(cfg)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    ref_losses = {r["step"]: r["loss"] for r in read_metrics(str(tmp_path / "ref" / "metrics.jsonl"))
                  if r["kind"] == "train"}
    got = {r["step"]: r["loss"] for r in read_metrics(os.path.join(out, "metrics.jsonl")) if r["kind"] == "train"}
    assert sorted(got) == list(range(1, total + 1)) and got == ref_losses
    a = load_checkpoint(latest_checkpoint(str(tmp_path / "ref")))["model"]
    b = load_checkpoint(latest_checkpoint(out))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_refuses_a_tokenizer_larger_than_the_model(tmp_path):
    data = str(tmp_path / "data")
    build_shards(data, seq_len=16, repeats=2)
    cfg = tmp_path / "small-vocab.toml"
    cfg.write_text(MODEL.replace("vocab_size = 300", "vocab_size = 200") + '[train]\ndata = "synthetic"\n'
                   f'out_dir = "{tmp_path / "out"}"\nmax_steps = 1\nmicro_batch = 2\nprogress = false\n'
                   'peak_flops = 1e11\nsynthetic_seq_len = 16\n')
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["eval", str(tmp_path / "out"), "--data", data])
    assert result.exit_code == 2 and "trained on" in result.output


def test_export_writes_a_transformers_folder_with_matching_logits_and_tokenizer(tmp_path):
    """`assay export` -> AutoModelForCausalLM / AutoTokenizer.from_pretrained load it; same logits, same ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assay.trainer.checkpoint import load_trained_model
    from assay.trainer.tokenizer import load_tokenizer

    data = str(tmp_path / "data")
    build_shards(data, seq_len=16, repeats=2)
    cfg = _config(tmp_path / "run.toml", data, str(tmp_path / "out"), max_steps=3)
    runner = CliRunner()
    assert runner.invoke(app, ["train", cfg]).exit_code == 0
    hf_dir = str(tmp_path / "hf")
    result = runner.invoke(app, ["export", str(tmp_path / "out"), "--out", hf_dir])
    assert result.exit_code == 0, result.output
    assert "phi3" in result.output and "step 3" in result.output
    assert {"config.json", "model.safetensors", "tokenizer.json", "assay_export.json"} <= set(os.listdir(hf_dir))
    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    assert hf.config.model_type == "phi3"
    from assay.trainer.tokenizer import eos_id

    eos = eos_id(load_tokenizer(f"{data}/tokenizer.json"))
    assert hf.config.eos_token_id == hf.config.bos_token_id == eos == hf.generation_config.eos_token_id
    ours, _, _ = load_trained_model(str(tmp_path / "out"))
    tokens = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(tokens) - hf(tokens).logits).abs().max().item() < 1e-4
    text = "Water boils at one hundred degrees."
    ours = load_tokenizer(f"{data}/tokenizer.json").encode(text).ids
    assert AutoTokenizer.from_pretrained(hf_dir)(text)["input_ids"] == ours
    # a second export into the same folder is refused unless asked for
    again = runner.invoke(app, ["export", str(tmp_path / "out"), "--out", hf_dir])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert runner.invoke(app, ["export", str(tmp_path / "out"), "--out", hf_dir, "--overwrite"]).exit_code == 0
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n], "no staging folder left behind"

    # and back: a fresh run started from the folder begins with exactly those weights (lr 0: nothing moves)
    init = _config(tmp_path / "init.toml", data, str(tmp_path / "init"), max_steps=1, lr=0.0)
    result = runner.invoke(app, ["train", init, "--init-from", hf_dir])
    assert result.exit_code == 0, result.output
    a, b = load_checkpoint(str(tmp_path / "out"))["model"], load_checkpoint(str(tmp_path / "init"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(open(init).read().replace("d_model = 32", "d_model = 64").replace(str(tmp_path / "init"),
                                                                                    str(tmp_path / "wrong")))
    result = runner.invoke(app, ["train", str(wrong), "--init-from", hf_dir])
    assert result.exit_code == 2 and "d_model" in result.output
    result = runner.invoke(app, ["train", init, "--fresh", "--init-from", str(tmp_path)])
    assert result.exit_code == 2 and "assay export" in result.output
