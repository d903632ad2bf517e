"""The training loop on real token shards: overfitting, bit-identical resume, fingerprint check, schedules,
config loading, and DDP and FSDP2 with 2 CPU processes (torchrun, gloo)."""
import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from test_trainer_support import build_shards

from assay.groundwork.config import ConfigError
from assay.trainer.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from assay.trainer.config import ModelConfig, RunConfig, TrainConfig
from assay.trainer.config_file import load_run_config
from assay.trainer.loop import train
from assay.trainer.metrics import read_metrics
from assay.trainer.schedule import lr_multiplier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_model(**kw):
    return ModelConfig(**{**dict(vocab_size=300, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                                 max_seq_len=64), **kw})


def _run(data, out, model=None, **kw):
    train_kw = dict(data=data, out_dir=out, micro_batch=4, max_steps=8, lr=3e-3, warmup_steps=2,
                    progress=False, peak_flops=1e11, checkpoint_every=3)
    return RunConfig(model=model or _tiny_model(), train=TrainConfig(**{**train_kw, **kw}))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("shards"))
    build_shards(path, seq_len=32, repeats=30)
    return path


def test_tiny_model_overfits_a_tiny_shard(shards, tmp_path):
    run = _run(shards, str(tmp_path / "run"), max_steps=60, lr=1e-2, warmup_steps=5, checkpoint_every=100)
    result = train(run)
    losses = list(result.losses.values())
    assert losses[0] > 5.0  # about ln(300) at the start
    assert losses[-1] < 1.0, losses[-10:]
    records = read_metrics(str(tmp_path / "run" / "metrics.jsonl"))
    train_recs = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_recs] == list(range(1, 61))
    assert all(r["tok_s"] > 0 and 0 < r["mfu"] and r["grad_norm"] > 0 and r["phase"] == "main" for r in train_recs)
    heldout = result.evaluation["heldout"]  # end-of-training evaluation on the held-out pools
    assert set(heldout) == {"edu", "web"} and heldout["web"]["skipped_empty"] == 1
    assert heldout["edu"]["bits_per_byte"] > 0


def test_resume_after_interruption_is_bit_identical(shards, tmp_path):
    # MoE with SparseMixer sampling and input jitter: the resumed run must restore the RNG exactly. With the
    # default peak_flops = 0 the run measures a matmul peak after restoring, which must not draw from the RNG
    model = _tiny_model(n_experts=4, top_k=2, norm="layer", input_jitter=0.01, aux_loss_coef=0.01)
    kw = dict(model=model, grad_accum=2, micro_batch=2, peak_flops=TrainConfig.peak_flops)
    assert kw["peak_flops"] == 0.0
    full = train(_run(shards, str(tmp_path / "full"), **kw))
    configured = train(_run(shards, str(tmp_path / "configured"), **{**kw, "peak_flops": 1e11}))
    assert configured.losses == full.losses  # measuring the peak changes nothing the model sees
    part = train(_run(shards, str(tmp_path / "part"), **kw, stop_after=5))
    assert part.step == 5
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "part"))] == ["step-0000003.pt"]
    resumed = train(_run(shards, str(tmp_path / "part"), **kw))
    assert sorted(resumed.losses) == [4, 5, 6, 7, 8]
    assert all(resumed.losses[s] == full.losses[s] for s in resumed.losses)  # exact equality
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    last = [r for r in read_metrics(str(tmp_path / "part" / "metrics.jsonl")) if r["kind"] == "train"][-1]
    assert last["step"] == 8 and last["loss"] == full.losses[8] and last["moe_load_max"] >= 1.0


def test_resume_on_changed_data_is_refused(tmp_path):
    data = str(tmp_path / "data")
    build_shards(data, seq_len=32, repeats=2)
    train(_run(data, str(tmp_path / "run"), max_steps=4, stop_after=3))
    import shutil

    shutil.rmtree(data)
    build_shards(data, seq_len=32, repeats=3)  # same layout, different content -> new fingerprint
    with pytest.raises(CheckpointError, match="fingerprint"):
        train(_run(data, str(tmp_path / "run"), max_steps=4))


def test_checkpoints_keep_the_newest_and_hold_everything(shards, tmp_path):
    result = train(_run(shards, str(tmp_path / "run"), max_steps=7, checkpoint_every=2, keep_checkpoints=2))
    names = [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "run"))]
    assert names == ["step-0000006.pt", "step-0000007.pt"]
    assert not [f for f in os.listdir(tmp_path / "run" / "checkpoints") if ".tmp-" in f]
    ckpt = load_checkpoint(str(tmp_path / "run"))
    assert ckpt["step"] == 7 and result.checkpoint.endswith("step-0000007.pt")
    assert {"model", "optimizer", "scheduler", "ranks", "config", "fingerprint"} <= set(ckpt)
    assert ckpt["ranks"][0]["data"]["position"] == 28 and "torch" in ckpt["ranks"][0]["rng"]


def test_schedules_by_hand():
    cos = TrainConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_multiplier(0, cos, 110) == pytest.approx(0.1)
    assert lr_multiplier(9, cos, 110) == pytest.approx(1.0)
    assert lr_multiplier(60, cos, 110) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_multiplier(110, cos, 110) == pytest.approx(0.1)
    wsd = TrainConfig(warmup_steps=10, schedule="wsd", wsd_decay_fraction=0.2, min_lr_ratio=0.0)
    assert lr_multiplier(79, wsd, 100) == 1.0  # stable until the last 20 steps
    assert lr_multiplier(89, wsd, 100) == pytest.approx(0.5)
    assert lr_multiplier(99, wsd, 100) == pytest.approx(0.0)


def test_toml_config_with_preset_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\npreset = "small-10m"\nn_layers = 2\n[train]\ndata = "synthetic"\nschedule = "wsd"\n'
                    '[eval]\ntasks = ["mmlu"]\n')
    cfg = load_run_config(str(path))
    assert cfg.model.n_layers == 2 and cfg.model.mlp == "geglu" and cfg.model.dense_every == 2
    assert cfg.train.schedule == "wsd" and cfg.eval.tasks == ["mmlu"]
    path.write_text('[model]\nd_modle = 3\n')
    with pytest.raises(ConfigError, match="d_modle"):
        load_run_config(str(path))
    path.write_text('[model]\npreset = "mini-7t"\n')
    with pytest.raises(ConfigError, match="presets:"):
        load_run_config(str(path))


DISTRIBUTED_SCRIPT = textwrap.dedent('''
    import json, os, sys, torch
    from assay.trainer.config import ModelConfig, RunConfig, TrainConfig
    from assay.trainer.distributed import init_distributed, wrap_model
    from assay.trainer.loop import accumulate_gradients, open_data, train
    from assay.trainer.model import Decoder
    data, out, parallel = sys.argv[1], sys.argv[2], sys.argv[3]
    model_cfg = ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=64)
    def run_config(name, **kw):
        return RunConfig(model=model_cfg, train=TrainConfig(data=data, out_dir=os.path.join(out, name), micro_batch=2,
                         grad_accum=2, max_steps=4, progress=False, peak_flops=1e11, parallel=parallel,
                         checkpoint_every=2, **kw))
    run = run_config("full")
    info = init_distributed()
    torch.manual_seed(0)
    raw = Decoder(model_cfg)
    model = wrap_model(raw, info, parallel)
    batch = torch.from_numpy(open_data(run, info).next_batch(4)).long()
    loss, _ = accumulate_gradients(model, raw, list(batch.split(2)), run, info)
    # FSDP2 keeps each rank's shard of a gradient: gather the whole one (a collective: every rank calls it)
    grads = {n: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad for n, p in raw.named_parameters()}
    if info.rank == 0:
        torch.save(grads, os.path.join(out, "grads.pt"))
    full = train(run, resume=False)
    part = train(run_config("part", stop_after=3), resume=False)
    resumed = train(run_config("part"))  # continues from the step-2 checkpoint
    # one file per rank: two processes printing to one pipe can interleave their lines
    with open(os.path.join(out, f"result-{info.rank}.json"), "w") as fh:
        json.dump({"full": full.losses, "part": part.losses, "resumed": resumed.losses,
                   "evaluated": full.evaluation is not None}, fh)
''')


@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_two_cpu_processes_match_single_process_gradients_and_resume_exactly(parallel, shards, tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP, and FSDP2 with its parameters sharded across the two."""
    script = tmp_path / "distributed_job.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    out = tmp_path / parallel
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    with socket.socket() as sock:  # a free port, so parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", str(port), str(script), shards,
                           str(out), parallel], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # single process: the same 8 sequences (ranks read 0,2,4,6 and 1,3,5,7), same model
    from assay.trainer.distributed import DistInfo
    from assay.trainer.loop import accumulate_gradients, open_data
    from assay.trainer.model import Decoder

    run = _run(shards, str(tmp_path / "single"), micro_batch=4, grad_accum=2)
    torch.manual_seed(0)
    raw = Decoder(run.model)
    batch = torch.from_numpy(open_data(run, DistInfo()).next_batch(8)).long()
    order = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])  # rank 0's micro-batches are global 0,2 then 4,6
    accumulate_gradients(raw, raw, [batch[order[:4]], batch[order[4:]]], run, DistInfo())
    grads = torch.load(out / "grads.pt")
    for name, p in raw.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-6, rtol=1e-4), name
    results = [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    assert len(results) == 2 and results[0]["full"] == results[1]["full"]  # losses averaged over ranks
    full, part, resumed = results[0]["full"], results[0]["part"], results[0]["resumed"]
    assert list(full) == ["1", "2", "3", "4"] and list(resumed) == ["3", "4"]
    assert all(part[s] == full[s] for s in part) and all(resumed[s] == full[s] for s in resumed)  # exact
    assert [r["evaluated"] for r in results] == [True, False]  # the main rank keeps the end-of-run evaluation
    ckpt = load_checkpoint(str(out / "full"))
    assert ckpt["world_size"] == 2 and [r["data"]["rank"] for r in ckpt["ranks"]] == [0, 1]
    plain = Decoder(run.model)
    plain.load_state_dict(ckpt["model"])  # whole tensors, loadable without any process group (assay eval)
    assert all(v.shape == plain.state_dict()[k].shape for k, v in ckpt["model"].items())


@pytest.mark.gpu
def test_bf16_autocast_training_on_gpu(shards, tmp_path):
    run = _run(shards, str(tmp_path / "gpu"), max_steps=30, lr=1e-2, checkpoint_every=100)
    result = train(run)
    losses = list(result.losses.values())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 1.0


def test_bf16_autocast_on_cpu_trains_moe_and_blocksparse_layers(shards, tmp_path):
    """The GPU's precision path on the CPU: bf16 autocast through MoE experts, blocksparse and dense attention,
    with fp32 master weights and optimizer state."""
    model = _tiny_model(n_experts=4, top_k=2, dense_every=2, block_size=4, local_blocks=2, vertical_stride=4)
    bf16 = train(_run(shards, str(tmp_path / "bf16"), model=model, max_steps=20, lr=1e-2, precision="bf16",
                      checkpoint_every=100))
    fp32 = train(_run(shards, str(tmp_path / "fp32"), model=model, max_steps=2, checkpoint_every=100))
    losses = list(bf16.losses.values())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 1.0
    assert bf16.losses[1] != fp32.losses[1] and bf16.losses[1] == pytest.approx(fp32.losses[1], abs=0.05)
    ckpt = load_checkpoint(bf16.checkpoint)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    assert all(s["exp_avg"].dtype == torch.float32 for s in ckpt["optimizer"]["state"].values())


GPU_JOB = textwrap.dedent('''
    import json, sys, torch, torch.distributed as dist
    from assay.trainer.config import ModelConfig, RunConfig, TrainConfig
    from assay.trainer.loop import train
    data, out, parallel = sys.argv[1], sys.argv[2], sys.argv[3]
    model = ModelConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq_len=64)
    run = RunConfig(model=model, train=TrainConfig(data=data, out_dir=out, micro_batch=4, grad_accum=2, max_steps=20,
                    lr=1e-2, warmup_steps=2, progress=False, peak_flops=1e12, parallel=parallel, checkpoint_every=10))
    result = train(run, resume=False)
    print("RESULT", json.dumps({"backend": dist.get_backend(), "world": dist.get_world_size(),
                                "losses": result.losses}))
''')


@pytest.mark.gpu
@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_torchrun_on_one_gpu_trains_over_nccl(parallel, shards, tmp_path):
    """One GPU cannot host two NCCL ranks, but torchrun with one process still builds the NCCL group and wraps
    the model (DDP or FSDP2), so the GPU collectives and bf16 autocast run through the real loop."""
    script = tmp_path / "gpu_job.py"
    script.write_text(GPU_JOB)
    out = tmp_path / parallel
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "1", str(script), shards, str(out),
                           parallel], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))[7:])
    assert result["backend"] == "nccl" and result["world"] == 1
    losses = list(result["losses"].values())
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 1.0
    from assay.trainer.model import Decoder

    ckpt = load_checkpoint(str(out))
    Decoder(_tiny_model(d_model=64, ffn_dim=128)).load_state_dict(ckpt["model"])  # whole tensors


@pytest.mark.gpu
def test_compiled_blocksparse_moe_model_on_gpu_trains_like_eager(shards, tmp_path):
    """torch.compile around the Triton attention and MoE kernels (autograd Functions launching Triton) on a GPU."""
    model = _tiny_model(d_model=64, ffn_dim=128, n_experts=4, top_k=2, dense_every=2, block_size=16,
                        local_blocks=2, vertical_stride=4)
    eager = train(_run(shards, str(tmp_path / "eager"), model=model, max_steps=3, checkpoint_every=100))
    compiled = train(_run(shards, str(tmp_path / "compiled"), model=model, max_steps=3, checkpoint_every=100,
                          compile=True))
    for step in (1, 2, 3):
        assert compiled.losses[step] == pytest.approx(eager.losses[step], abs=3e-2)


def test_compiled_model_trains_like_eager(shards, tmp_path):
    eager = train(_run(shards, str(tmp_path / "eager"), max_steps=2, checkpoint_every=100))
    compiled = train(_run(shards, str(tmp_path / "compiled"), max_steps=2, checkpoint_every=100, compile=True))
    assert compiled.losses[1] == pytest.approx(eager.losses[1], abs=1e-4)
    assert compiled.losses[2] == pytest.approx(eager.losses[2], abs=1e-3)


def test_phi3_small_style_model_trains_through_the_loop(shards, tmp_path):
    small = _tiny_model(norm="layer", mlp="geglu", bias=True, tie_embeddings=True, embedding_multiplier=10.0,
                        mup_attention=True, logit_divisor=8.0, dense_every=2, block_size=4, local_blocks=2,
                        vertical_stride=4)
    result = train(_run(shards, str(tmp_path / "small"), model=small, max_steps=20, lr=3e-2, checkpoint_every=100))
    losses = list(result.losses.values())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 0.5


def test_compile_auto_compiles_long_cpu_runs_only(shards, tmp_path, monkeypatch):
    """The default ("auto") compiles a CPU run long enough to repay the compile, and says so in the log."""
    from assay.groundwork.config import ConfigError
    from assay.trainer import compile_policy
    from assay.trainer.config import TrainConfig
    from assay.trainer.metrics import read_metrics

    assert TrainConfig().compile == "auto"
    long = compile_policy.AUTO_MIN_STEPS
    assert compile_policy.should_compile("auto", "cpu", long) == compile_policy.can_compile_on_cpu()
    assert not compile_policy.should_compile("auto", "cpu", long - 1)
    assert not compile_policy.should_compile("auto", "cuda:0", long)
    assert compile_policy.should_compile(True, "cuda:0", 1) and not compile_policy.should_compile(False, "cpu", long)
    with pytest.raises(ConfigError, match="compile must be"):
        TrainConfig(compile="yes")
    monkeypatch.setattr(compile_policy, "AUTO_MIN_STEPS", 2)  # a short run counts as long here
    train(_run(shards, str(tmp_path / "auto"), max_steps=2, checkpoint_every=100))
    start = [r for r in read_metrics(str(tmp_path / "auto" / "metrics.jsonl")) if r["kind"] == "start"][0]
    assert start["compiled"] is compile_policy.can_compile_on_cpu()
