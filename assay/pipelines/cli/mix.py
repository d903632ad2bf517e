"""`assay mix`: turn curated pools into token shards following a data recipe (or only count, --dry-run)."""
from __future__ import annotations

import typer

from assay.pipelines.cli.options import known_errors

MIX_HELP = (
    "Mix curated pools into token shards for `assay train`, following a data recipe.\n\n"
    "Each pool is a curation output filtered by a DuckDB predicate; each phase draws its token budget from the "
    "pools by weight, repeating a pool at most `max_repeats` times. Writes memory-mappable shards, an index, "
    "tokenizer.json, held-out documents, manifest.json and README.md, the dataset card (see docs/mix.md). "
    "`--format megatron` / `--format nanogpt` add the same tokens as Megatron-LM/NeMo indexed datasets "
    "(megatron/PHASE_text_document.bin/.idx) and nanoGPT files (nanogpt/train.bin, val.bin, meta.pkl); "
    "`--format litdata` a litdata optimized dataset per phase for LitGPT (litdata/PHASE/).\n\n"
    "Example: `assay mix recipes/sample.toml --dry-run`, then "
    "`assay mix recipes/sample.toml --output out/mix --format megatron --format nanogpt`."
)


def register(app: typer.Typer) -> None:
    @app.command("mix", help=MIX_HELP)
    def mix(
        recipe: str = typer.Argument(..., help="Recipe TOML: pools, phases, budgets (see recipes/sample.toml)."),
        output: str = typer.Option(None, "--output", "-o", help="Token-shard directory (default: the recipe's "
                                                                   "`output`). Replaced atomically when it exists."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Tokenize and count, print the per-pool and "
                                                              "per-phase token table, write nothing."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
        formats: list[str] = typer.Option([], "--format", "-f", help="Also write the tokens for another trainer: "
                                          "megatron (Megatron-LM/NeMo .bin/.idx per phase) or nanogpt (flat "
                                          "uint16/uint32 train.bin and val.bin) or litdata (LitGPT's "
                                          "StreamingDataset + TokensLoader, litdata/PHASE/); repeatable. "
                                          "See docs/mix.md."),
    ) -> None:
        """Mix curated pools into token shards (help text: MIX_HELP)."""
        from rich.console import Console

        from assay.groundwork.config import ConfigError
        from assay.pipelines.mix import BudgetError, load_recipe, render, run_mix
        from assay.trainer.token_shards import TokenShardError
        from assay.trainer.tokenizer import TokenizerError

        console = Console(stderr=True)
        from assay.trainer.token_export import FORMATS

        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise typer.BadParameter(f"unknown format(s) {unknown}; use any of {list(FORMATS)}", param_hint="--format")
        with known_errors(ConfigError, BudgetError, TokenizerError, TokenShardError, FileExistsError):
            cfg = load_recipe(recipe)
            report = run_mix(cfg, output=output, dry_run=dry_run, progress=not quiet, console=console,
                             formats=tuple(dict.fromkeys(formats)))
        table_console = Console()
        table_console.width = max(table_console.width, 130)  # the tables stay readable when piped
        render(cfg, report, table_console)
        if report.error:
            raise typer.Exit(1)
        if not dry_run:
            m = report.manifest
            typer.echo(f"wrote {m['sequences']:,} sequences ({m['tokens']:,} tokens, {m['dtype']}) to "
                       f"{report.output}; fingerprint {m['fingerprint'][:16]}")
