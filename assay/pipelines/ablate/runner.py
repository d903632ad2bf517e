"""Run a plan: for each cell, mix (cached by recipe hash), train, evaluate, write the cell's result.

Resumable at two levels: a cell whose result.json exists is skipped (the file is written atomically
after its evaluation, so it exists only for a finished cell); an interrupted cell's training continues
from its newest checkpoint. A recipe whose pools cannot be mixed (a missing classifier column, an absent
synthetic pool) is recorded as unavailable with the reason, and the other recipes go on; a cell that
fails is recorded in its error.json and the run goes on.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from assay.groundwork.atomic import write_json_atomic
from assay.pipelines.ablate.cells import Cell, cell_dir, plan_cells
from assay.pipelines.ablate.evalsets import build_eval_sets, checkpoint_scores, load_tasks
from assay.pipelines.ablate.lineage import code_version, json_hash
from assay.pipelines.ablate.plan import Plan

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
STATUS_FILE = "status.json"
STARTED_FILE = "started.json"  # the config hash a cell's training began with


@dataclass
class RunSummary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this run
    stale: list[str] = field(default_factory=list)  # finished with another config: set aside and rerun
    failed: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # "recipe/size": why it could not be mixed
    mixes_built: list[str] = field(default_factory=list)


def result_path(output: str, cell: Cell) -> str:
    return os.path.join(cell_dir(output, cell.recipe, cell.size, cell.seed), RESULT_FILE)


def mix_cache_dir(plan: Plan, output: str) -> str:
    return os.path.abspath(plan.mix_cache) if plan.mix_cache else os.path.join(output, "mixes")


def run_plan(plan: Plan, output: str | None = None, log: Callable[[str], None] = print) -> RunSummary:
    """Run every unfinished cell of `plan`; returns what ran, what was skipped, failed or unavailable."""

    import torch

    threads = torch.get_num_threads()
    if plan.torch_threads:
        torch.set_num_threads(plan.torch_threads)
    try:
        return _run_plan(plan, os.path.abspath(output or plan.output), log)
    finally:
        torch.set_num_threads(threads)


def _run_plan(plan: Plan, output: str, log: Callable[[str], None]) -> RunSummary:
    from assay.groundwork.config import ConfigError
    from assay.pipelines.ablate.mixcache import ensure_mix
    from assay.pipelines.mix import BudgetError
    from assay.trainer.tokenizer import TokenizerError

    cells = plan_cells(plan)
    eval_info = build_eval_sets(plan, output)
    tasks = load_tasks(plan)
    write_json_atomic(_plan_record(plan), os.path.join(output, "plan.json"))
    summary = RunSummary()
    mixes: dict[tuple[str, str], str] = {}
    todo: list[tuple[Cell, str]] = []
    for cell in cells:
        expected = json_hash(cell_config(plan, cell, eval_info))
        stored = stored_config_hash(output, cell)
        if stored == expected and os.path.isfile(result_path(output, cell)):
            summary.skipped.append(cell.key)
            continue
        if stored and stored != expected:  # finished or interrupted under another config: never mix the two
            moved = _retire(output, cell)
            summary.stale.append(cell.key)
            log(f"cell {cell.key}: started with another config (plan or eval sets changed); moved to {moved} "
                "and running it again")
        where = f"{cell.recipe}/{cell.size}"
        if where in summary.unavailable:
            continue
        if (cell.recipe, cell.size) not in mixes:
            try:
                folder, built = ensure_mix(cell.resolved, mix_cache_dir(plan, output), cell.recipe)
            except (ConfigError, BudgetError, TokenizerError) as exc:
                summary.unavailable[where] = str(exc)
                log(f"recipe {cell.recipe!r} unavailable at size {cell.size!r}: {exc}")
                continue
            mixes[(cell.recipe, cell.size)] = folder
            if built:
                summary.mixes_built.append(folder)
                log(f"mixed {where} -> {folder}")
        todo.append((cell, mixes[(cell.recipe, cell.size)]))
    peak = _peak_flops(plan) if todo else 0.0
    jobs = [(plan, output, cell, data, eval_info, peak) for cell, data in todo]
    if plan.parallel_cells > 1 and len(jobs) > 1:
        outcomes = _run_parallel(jobs, plan.parallel_cells, log)
    else:
        outcomes = (_cell_job(job, tasks, log) for job in jobs)
    for key, reason in outcomes:
        if reason is None:
            summary.ran.append(key)
        else:
            summary.failed[key] = reason
    write_json_atomic({
        "unavailable": {**summary.unavailable}, "failed": summary.failed,
        "labels": {n: {"label": r.label, "needs": r.needs} for n, r in plan.recipes.items()}},
        os.path.join(output, STATUS_FILE))
    return summary


def _cell_job(job: tuple, tasks: list | None = None, log: Callable[[str], None] = print) -> tuple[str, str | None]:
    """Train and evaluate one cell; (cell key, None) or (cell key, the reason it failed, also kept on disk in
    error.json). One failing cell must not stop the plan."""
    plan, output, cell, data, eval_info, peak = job
    try:
        _run_cell(plan, output, cell, data, eval_info, load_tasks(plan) if tasks is None else tasks, peak, log)
        return cell.key, None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        write_json_atomic({"cell": cell.key, "error": reason, "at": time.time()},
                          os.path.join(cell_dir(output, cell.recipe, cell.size, cell.seed), ERROR_FILE))
        log(f"cell {cell.key} failed: {reason}")
        return cell.key, reason


def _worker_init(threads: int, workers: int) -> None:
    """A cell worker's torch threads: the plan's, or (0) the machine's cores shared out, never oversubscribed."""
    import torch

    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // workers))
    torch.set_num_interop_threads(1)


def _worker_log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _worker_job(job: tuple) -> tuple[str, str | None]:
    return _cell_job(job, None, _worker_log)


def _run_parallel(jobs: list[tuple], workers: int, log: Callable[[str], None]):
    """Cells in `workers` fresh processes (spawned: no forked torch state), each with the plan's torch
    threads; yields (key, reason) as cells finish. Mixes were built before, so workers only train and score."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    plan = jobs[0][0]
    threads = plan.torch_threads or max(1, (os.cpu_count() or 1) // workers)
    log(f"running {len(jobs)} cells, {workers} at a time, {threads} torch thread(s) each")
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(plan.torch_threads, workers)) as pool:
        futures = {pool.submit(_worker_job, job): job[2].key for job in jobs}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # the worker process itself died (killed, out of memory)
                yield futures[future], f"{type(exc).__name__}: {exc}"


def _plan_record(plan: Plan) -> dict:
    from assay.groundwork.config import to_dict

    return to_dict(plan)


def _peak_flops(plan: Plan) -> float:
    if plan.train.get("peak_flops"):
        return float(plan.train["peak_flops"])
    import torch

    from assay.trainer.peak import measure_matmul_peak

    return measure_matmul_peak("cuda" if torch.cuda.is_available() else "cpu")


def run_config(plan: Plan, cell: Cell, data: str, out_dir: str, peak: float = 0.0):
    """The trainer config of a cell: the plan's [train] over the ablation defaults, checkpoints spaced for
    `eval.points` evaluations (all kept), the trainer's own end-of-run evaluation off (ours is shared),
    the matmul peak measured once per run (the MFU denominator) unless the plan gives one."""
    from assay.trainer.config import EvalConfig, RunConfig

    every = max(1, cell.steps // plan.eval.points)
    train = plan.train_config(peak_flops=plan.train.get("peak_flops", peak), data=data, out_dir=out_dir,
                              seed=cell.seed, max_steps=cell.steps, checkpoint_every=every, keep_checkpoints=0,
                              eval_every=0)
    return RunConfig(model=cell.model, train=train, eval=EvalConfig(heldout=False, tasks=[]))


def cell_config(plan: Plan, cell: Cell, eval_info: dict) -> dict:
    """Everything that decides a cell's numbers, as recorded in its result and hashed into its lineage:
    the trainer config (without paths, the MFU denominator and display settings), the resolved recipe, the
    data its pools read (pools_fingerprint), the eval sets (with their file hashes) and tasks. A finished
    cell whose hash differs is rerun."""
    from assay.groundwork.config import to_dict
    from assay.pipelines.mix import pools_fingerprint, recipe_dict

    run = to_dict(run_config(plan, cell, "", ""))
    run["train"] = {k: v for k, v in run["train"].items()
                    if k not in ("data", "out_dir", "peak_flops", "progress", "log_every")}
    return {"run": run, "recipe": recipe_dict(cell.resolved), "recipe_hash": cell.recipe_hash,
            "pools_fingerprint": pools_fingerprint(cell.resolved),
            "eval_sets": eval_info, "tasks": list(plan.eval.tasks), "task_limit": plan.eval.task_limit,
            "max_docs": plan.eval.max_docs}


def stored_config_hash(output: str, cell: Cell) -> str:
    """The config hash a cell's folder was started (or finished) with; "" for a new cell."""
    folder = cell_dir(output, cell.recipe, cell.size, cell.seed)
    for name, keys in ((RESULT_FILE, ("lineage", "config_hash")), (STARTED_FILE, ("config_hash",))):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                value = json.load(fh)
            for key in keys:
                value = value[key]
            return value
        except (OSError, ValueError, KeyError):
            continue
    return ""


def _retire(output: str, cell: Cell) -> str:
    """Move a cell's folder aside (kept for inspection, never read again) so it reruns from scratch."""
    folder = cell_dir(output, cell.recipe, cell.size, cell.seed)
    target = f"{folder}.stale-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    os.rename(folder, target)
    return target


def _run_cell(plan: Plan, output: str, cell: Cell, data: str, eval_info: dict, tasks: list, peak: float,
              log: Callable[[str], None]) -> None:
    from assay.groundwork.config import to_dict
    from assay.trainer.checkpoint import list_checkpoints, load_checkpoint
    from assay.trainer.loop import train
    from assay.trainer.metrics import read_metrics
    from assay.trainer.token_shards import ShardFolder

    start = time.perf_counter()
    folder = cell_dir(output, cell.recipe, cell.size, cell.seed)
    run = run_config(plan, cell, data, os.path.join(folder, "train"), peak)
    config = cell_config(plan, cell, eval_info)
    write_json_atomic({"config_hash": json_hash(config), "cell": cell.key}, os.path.join(folder, STARTED_FILE))
    log(f"training {cell.key}: {cell.params:,} parameters, {cell.steps} steps, {cell.tokens:,} tokens")
    import torch

    began = time.perf_counter()
    trained = train(run, resume=True)
    train_seconds = time.perf_counter() - began
    tokens_per_step = plan.sequences_per_step * plan.mix.seq_len
    began = time.perf_counter()
    evals = []
    for path in list_checkpoints(run.train.out_dir):
        step = int(load_checkpoint(path)["step"])
        metrics = checkpoint_scores(path, data, output, plan, tasks)
        evals.append({"step": step, "tokens": step * tokens_per_step, "metrics": metrics})
    if not evals or evals[-1]["step"] != trained.total_steps:
        raise RuntimeError(f"training of {cell.key} stopped at step {trained.step} of {trained.total_steps}; "
                           "rerun `assay ablate` to resume it")
    eval_seconds = time.perf_counter() - began
    curve = [{"step": r["step"], "tokens": r["tokens"], "loss": r["loss"]}
             for r in read_metrics(os.path.join(run.train.out_dir, "metrics.jsonl")) if r.get("kind") == "train"]
    manifest = ShardFolder(data).manifest
    final = dict(evals[-1]["metrics"])
    final["train.loss"] = curve[-1]["loss"] if curve else float("nan")
    result = {
        "cell": {"recipe": cell.recipe, "size": cell.size, "seed": cell.seed},
        "params": cell.params, "steps": trained.total_steps, "tokens": trained.total_steps * tokens_per_step,
        "flops": 6.0 * cell.params * trained.total_steps * tokens_per_step,
        "metrics": final, "evals": evals, "loss_curve": curve,
        "train_steps_this_run": len(trained.losses),
        "lineage": {"recipe_hash": manifest["recipe_hash"], "manifest_fingerprint": manifest["fingerprint"],
                    "tokenizer_hash": manifest["tokenizer_hash"], "code_version": code_version(),
                    "config_hash": json_hash(config)},
        "config": config, "run_config": to_dict(run), "data": data,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "tokens_per_second": (len(trained.losses) * tokens_per_step / train_seconds if train_seconds > 0 else None),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(result, result_path(output, cell))
    stale = os.path.join(folder, ERROR_FILE)
    if os.path.exists(stale):
        os.remove(stale)
    log(f"finished {cell.key} in {result['wall_seconds']:.1f} s: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(final.items())))
