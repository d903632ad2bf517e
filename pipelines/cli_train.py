"""`assay train CONFIG` and `assay eval CHECKPOINT`: train and evaluate phi-3-family proxy models."""
from __future__ import annotations

import json
from typing import Optional

import typer

TRAIN_HELP = """Train a phi-3-family proxy model on token shards (from `assay mix`), resuming if possible.

CONFIG is a TOML file with [model] (a preset name and/or fields), [train] and [eval] tables; see
docs/trainer.md. If the output folder already holds a checkpoint, training continues from it exactly
(model, optimizer, schedule, RNG, data position); the shards' fingerprint must match. Writes
OUT/metrics.jsonl, OUT/checkpoints/step-*.pt and OUT/config.json; evaluates held-out pools at the end.

Examples:\n
  assay train --presets\n
  assay train my-run.toml --data out/mix --out-dir out/train-mini\n
  assay train run.toml --max-steps 20 --fresh\n
  torchrun --nproc-per-node 2 -m pipelines.cli train run.toml     (DDP; gloo on CPU, NCCL on GPU)
"""

EVAL_HELP = """Evaluate a checkpoint: held-out loss and bits-per-byte per pool, and cloze multiple-choice tasks.

CHECKPOINT is a step-*.pt file or a training output folder (its newest checkpoint). Tasks are JSONL
files ({"context", "choices", "gold"} per line, see docs/trainer.md) or "mmlu" (data/eval/mmlu.jsonl.gz).

Examples:\n
  assay eval out/train-mini\n
  assay eval out/train-mini --task mmlu --limit 500 --json-out out/train-mini/eval.json\n
  assay eval out/train-mini/checkpoints/step-0001000.pt --data out/mix --task my_task.jsonl
"""


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("train", help=TRAIN_HELP)
    def train_cmd(
        config: Optional[str] = typer.Argument(None, help="TOML run config"),
        data: Optional[str] = typer.Option(None, help="token-shard folder, or 'synthetic' (overrides [train] data)"),
        out_dir: Optional[str] = typer.Option(None, "--out-dir", "-o", help="output folder (overrides [train] out_dir)"),
        max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides [train] max_steps)"),
        fresh: bool = typer.Option(False, "--fresh", help="ignore existing checkpoints in the output folder"),
        compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model"),
        progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="live progress bar"),
        presets: bool = typer.Option(False, "--presets", help="list model presets with sizes and FLOPs/token, then exit"),
        show_config: bool = typer.Option(False, "--show-config", help="print the resolved config and exit"),
    ) -> None:
        from rich.console import Console

        from trainer.config import ConfigError, load_run_config, to_dict

        console = Console()
        if presets:
            from rich.table import Table

            from trainer.presets import PRESETS, flops_per_token, parameter_count

            table = Table("preset", "params", "active", "MFLOPs/token (train)", "layers x d_model", "style")
            for name, cfg in PRESETS.items():
                counts = parameter_count(cfg)
                style = "moe" if cfg.n_experts else ("small" if cfg.mlp == "geglu" else "mini")
                table.add_row(name, f"{counts['total'] / 1e6:.1f}M", f"{counts['active'] / 1e6:.1f}M",
                              f"{flops_per_token(cfg) / 1e6:.0f}", f"{cfg.n_layers} x {cfg.d_model}", style)
            console.print(table)
            return
        if config is None:
            _fail("give a CONFIG file (see docs/trainer.md), or --presets to list the model presets")
        try:
            run = load_run_config(config)
            if data is not None:
                run.train.data = data
            if out_dir is not None:
                run.train.out_dir = out_dir
            if max_steps is not None:
                run.train.max_steps = max_steps
            if compile is not None:
                run.train.compile = compile
            if progress is not None:
                run.train.progress = progress
        except ConfigError as exc:
            _fail(str(exc))
        if show_config:
            console.print_json(json.dumps(to_dict(run)))
            return
        from trainer.checkpoint import CheckpointError
        from trainer.loop import train
        from trainer.presets import describe
        from trainer.token_shards import TokenShardError

        console.print(f"model: {describe(run.model)}")
        try:
            result = train(run, resume=not fresh)
        except (ConfigError, CheckpointError, TokenShardError, FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        last = result.losses[max(result.losses)] if result.losses else float("nan")
        console.print(f"step {result.step}/{result.total_steps}  last loss {last:.4f}  checkpoint {result.checkpoint}")
        if result.evaluation:
            console.print_json(json.dumps(result.evaluation))

    @app.command("eval", help=EVAL_HELP)
    def eval_cmd(
        checkpoint: str = typer.Argument(..., help="a step-*.pt file or a training output folder"),
        data: Optional[str] = typer.Option(None, help="token-shard folder for tokenizer and held-out pools "
                                                      "(default: the one the model trained on)"),
        task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="cloze task JSONL or 'mmlu' (repeatable)"),
        limit: Optional[int] = typer.Option(None, help="score at most this many items per task"),
        json_out: Optional[str] = typer.Option(None, "--json-out", help="also write the result to this JSON file"),
    ) -> None:
        from trainer.checkpoint import CheckpointError
        from trainer.config import ConfigError
        from trainer.evaluate import evaluate_checkpoint
        from trainer.tokenizer import TokenizerError

        try:
            result = evaluate_checkpoint(checkpoint, data_dir=data, tasks=task or None, output=json_out,
                                         task_limit=limit)
        except (CheckpointError, ConfigError, TokenizerError, FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
