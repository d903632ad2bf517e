"""`assay train CONFIG` and `assay eval CHECKPOINT`: train and evaluate phi-3-family proxy models."""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

import typer

from assay.pipelines.cli.options import fail, known_errors

TRAIN_HELP = """Train a phi-3-family proxy model on token shards (from `assay mix`), resuming if possible.

CONFIG is a TOML file with [model] (a preset name and/or fields), [train] and [eval] tables; see
docs/trainer.md. If the output folder already holds a checkpoint, training continues from it exactly
(model, optimizer, schedule, RNG, data position); the shards' fingerprint must match. Writes
OUT/metrics.jsonl, OUT/checkpoints/step-*.pt and OUT/config.json; evaluates held-out pools at the end.

Examples:\n
  assay train --presets\n
  assay train my-run.toml --data out/mix --out-dir out/train-mini\n
  assay train run.toml --max-steps 20 --fresh\n
  assay train run.toml --init-from out/train-hf     (start from a transformers folder)\n
  torchrun --nproc-per-node 2 -m assay.pipelines.cli train run.toml     (DDP; gloo on CPU, NCCL on GPU)
"""

EVAL_HELP = """Evaluate a checkpoint: held-out loss and bits-per-byte per pool, and cloze multiple-choice tasks.

CHECKPOINT is a step-*.pt file or a training output folder (its newest checkpoint). Tasks are JSONL
files ({"context", "choices", "gold"} per line, see docs/trainer.md) or "mmlu" (data/eval/mmlu.jsonl.gz).

Examples:\n
  assay eval out/train-mini\n
  assay eval out/train-mini --task mmlu --limit 500 --json-out out/train-mini/eval.json\n
  assay eval out/train-mini/checkpoints/step-0001000.pt --data out/mix --task my_task.jsonl
"""

EXPORT_HELP = """Export a checkpoint as a transformers folder: config.json, model.safetensors and the tokenizer.

`AutoModelForCausalLM.from_pretrained(OUT)` and `AutoTokenizer.from_pretrained(OUT)` load it, so
lm-evaluation-harness, vLLM and the rest of the ecosystem can run an assay proxy model. The family
(phi3, phimoe or llama) follows the config; blocksparse and phi-3-small configs have no transformers class
and are refused. The tokenizer is the one of the token shards the run trained on (or --data).

Examples:\n
  assay export out/train-mini --out out/train-mini-hf\n
  assay export out/train-mini/checkpoints/step-0001000.pt --out hf/mini --family llama
"""


def register(app: typer.Typer) -> None:
    @app.command("train", help=TRAIN_HELP)
    def train_cmd(
        config: Optional[str] = typer.Argument(None, help="TOML run config"),
        data: Optional[str] = typer.Option(None, help="token-shard folder, or 'synthetic' (overrides [train] data)"),
        out_dir: Optional[str] = typer.Option(None, "--out-dir", "-o",
                                              help="output folder (overrides [train] out_dir)"),
        max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides [train] max_steps)"),
        fresh: bool = typer.Option(False, "--fresh", help="ignore existing checkpoints in the output folder"),
        init_from: Optional[str] = typer.Option(None, "--init-from", help="start from the weights of a transformers "
                                                "folder (Phi3/PhiMoE/Llama, e.g. `assay export`); overrides "
                                                "[train] init_from"),
        compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model"),
        progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="live progress bar"),
        presets: bool = typer.Option(False, "--presets",
                                     help="list model presets with sizes and FLOPs/token, then exit"),
        show_config: bool = typer.Option(False, "--show-config", help="print the resolved config and exit"),
    ) -> None:
        from rich.console import Console

        from assay.groundwork.config import ConfigError, to_dict
        from assay.trainer.config_file import load_run_config

        console = Console()
        if presets:
            from rich.table import Table

            from assay.trainer.presets import PRESETS
            from assay.trainer.sizing import flops_per_token, parameter_count

            table = Table("preset", "params", "active", "MFLOPs/token (train)", "layers x d_model", "style")
            for name, cfg in PRESETS.items():
                counts = parameter_count(cfg)
                style = "moe" if cfg.n_experts else ("small" if cfg.mlp == "geglu" else "mini")
                table.add_row(name, f"{counts['total'] / 1e6:.1f}M", f"{counts['active'] / 1e6:.1f}M",
                              f"{flops_per_token(cfg) / 1e6:.0f}", f"{cfg.n_layers} x {cfg.d_model}", style)
            console.print(table)
            return
        if config is None:
            fail("give a CONFIG file (see docs/trainer.md), or --presets to list the model presets")
        with known_errors(ConfigError):
            run = load_run_config(config)
            given = dict(data=data, out_dir=out_dir, max_steps=max_steps, init_from=init_from, compile=compile,
                         progress=progress)
            run.train = dataclasses.replace(run.train, **{k: v for k, v in given.items() if v is not None})
        if show_config:
            console.print_json(json.dumps(to_dict(run)))
            return
        from assay.trainer.checkpoint import CheckpointError
        from assay.trainer.loop import train
        from assay.trainer.sizing import describe
        from assay.trainer.token_shards import TokenShardError

        console.print(f"model: {describe(run.model)}")
        with known_errors(ConfigError, CheckpointError, TokenShardError, FileNotFoundError, ValueError):
            result = train(run, resume=not fresh)
        last = result.losses[max(result.losses)] if result.losses else float("nan")
        console.print(f"step {result.step}/{result.total_steps}  last loss {last:.4f}  checkpoint {result.checkpoint}")
        if result.evaluation:
            console.print_json(json.dumps(result.evaluation))

    @app.command("export", help=EXPORT_HELP)
    def export_cmd(
        checkpoint: str = typer.Argument(..., help="a step-*.pt file or a training output folder"),
        out: str = typer.Option(..., "--out", "-o", help="the folder to write"),
        fmt: str = typer.Option("hf", "--format", help="hf (a transformers folder)"),
        family: Optional[str] = typer.Option(None, help="phi3 | phimoe | llama | phi3small (default: from the config; "
                                                        "phi3small writes Phi-3-small's own layout)"),
        data: Optional[str] = typer.Option(None, help="token-shard folder whose tokenizer to include "
                                                      "(default: the one the model trained on)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty --out folder"),
    ) -> None:
        from assay.groundwork.config import ConfigError
        from assay.trainer.checkpoint import CheckpointError
        from assay.trainer.export import export_checkpoint
        from assay.trainer.tokenizer import TokenizerError

        with known_errors(CheckpointError, ConfigError, TokenizerError, FileNotFoundError, FileExistsError, ValueError):
            summary = export_checkpoint(checkpoint, out, fmt, family, data, overwrite)
        note = "" if summary["tokenizer"] else " (no tokenizer: the run trained on synthetic tokens; pass --data)"
        typer.echo(f"wrote {summary['out']}: {summary['family']}, step {summary['step']}, "
                   f"{summary['parameters']:,} parameters{note}")

    @app.command("eval", help=EVAL_HELP)
    def eval_cmd(
        checkpoint: str = typer.Argument(..., help="a step-*.pt file or a training output folder"),
        data: Optional[str] = typer.Option(None, help="token-shard folder for tokenizer and held-out pools "
                                                      "(default: the one the model trained on)"),
        task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="cloze task JSONL or 'mmlu' (repeatable)"),
        limit: Optional[int] = typer.Option(None, help="score at most this many items per task"),
        json_out: Optional[str] = typer.Option(None, "--json-out", help="also write the result to this JSON file"),
    ) -> None:
        from assay.groundwork.config import ConfigError
        from assay.trainer.checkpoint import CheckpointError
        from assay.trainer.evaluate import evaluate_checkpoint
        from assay.trainer.tokenizer import TokenizerError

        with known_errors(CheckpointError, ConfigError, TokenizerError, FileNotFoundError, ValueError):
            result = evaluate_checkpoint(checkpoint, data_dir=data, tasks=task or None, output=json_out,
                                         task_limit=limit)
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
