"""`assay mix` end to end: pools -> tokenizer -> Beam tokenize -> sample -> pack -> token shards.

Everything is built in a temporary directory next to the output and renamed into place at the end, so the
output is either the previous complete mix or the new complete one, never a mixture.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from assay.groundwork.atomic import STAGING, atomic_folder
from assay.pipelines.mix.pools import PoolFiles, count_pool, pools_connection, resolve_pools, tokenizer_sample
from assay.pipelines.mix.recipe import Recipe, recipe_dict, recipe_hash
from assay.pipelines.mix.sampling import BudgetError, PhasePlan, phase_quotas, plan_phases
from assay.pipelines.mix.staged import StagedTokens


@dataclass
class PoolReport:
    name: str
    source: str
    predicate: str
    documents: int = 0  # training documents (held-out and empty ones excluded)
    tokens: int = 0  # their tokens, EOS included
    heldout_documents: int = 0
    empty_documents: int = 0
    skipped: str = ""


@dataclass
class MixReport:
    """What a mix holds or would hold: the dry-run table and the manifest's counts come from here."""

    pools: dict[str, PoolReport] = field(default_factory=dict)
    quotas: list[tuple[int, dict[str, tuple[float, int]]]] = field(default_factory=list)
    plans: list[PhasePlan] = field(default_factory=list)
    error: str = ""
    output: str = ""
    manifest: dict[str, Any] | None = None


class _Steps:
    """Progress lines for the driver's steps (a spinner while a step runs, its time when done)."""

    def __init__(self, console, show: bool):
        self.console, self.show = console, show

    @contextlib.contextmanager
    def step(self, message: str):
        start = time.perf_counter()
        if not self.show:
            yield
            return
        from assay.groundwork.terminal import escaped

        with self.console.status(escaped(message) + " ..."):
            yield
        self.console.print(f"[green]done[/green] {escaped(message)} ({time.perf_counter() - start:.1f} s)")

    def watch(self, message: str, work, total: int, done) -> None:
        """Run `work()` in a thread and show a bar of `done()` out of `total` until it returns (or raises)."""
        if not self.show:
            work()
            return
        import threading

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        failure: list[BaseException] = []

        def target():
            try:
                work()
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        start = time.perf_counter()
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        from assay.groundwork.terminal import escaped

        columns = (TextColumn(escaped(message)), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(message, total=total)
            while thread.is_alive():
                thread.join(0.25)
                bar.update(task, completed=done())
        if failure:
            raise failure[0]
        self.console.print(f"[green]done[/green] {escaped(message)} ({time.perf_counter() - start:.1f} s)")

    def warn(self, message: str) -> None:
        from assay.groundwork.terminal import escaped

        self.console.print(f"[yellow]warning:[/yellow] {escaped(message)}")


def run_mix(recipe: Recipe, output: str | None = None, dry_run: bool = False, progress: bool = True,
            console=None, formats: tuple[str, ...] = ()) -> MixReport:
    """Build the token shards of `recipe` in `output` (or only count, with dry_run), plus their exports for other
    trainers (`formats`, of assay.trainer.token_export.FORMATS) and the dataset card. Raises ConfigError /
    BudgetError / TokenizerError with messages that name the field or pool to change."""
    from rich.console import Console

    steps = _Steps(console or Console(stderr=True), progress)
    output = os.path.abspath(output or recipe.output)
    report = MixReport(output=output)
    if not dry_run:
        _check_output(output)
    pools, skipped = resolve_pools(recipe, warn=steps.warn)
    for name, reason in skipped.items():
        spec = recipe.pools[name]
        report.pools[name] = PoolReport(name, spec.source, spec.predicate, skipped=reason)
    con = pools_connection(pools)
    try:
        with steps.step(f"counting {len(pools)} pools with DuckDB"):
            counts = {pool.name: count_pool(con, pool) for pool in pools}
        report.quotas = phase_quotas(recipe, skipped)
        with _work_folder(output, dry_run) as work:
            tok = _tokenizer(recipe, con, pools, work, steps)
            _tokenize(recipe, pools, work, dry_run, steps)
            staged = StagedTokens(os.path.join(work, STAGING, "tokens"))
            for pool in pools:
                docs = staged.documents(pool.name)
                count = counts[pool.name]
                report.pools[pool.name] = PoolReport(
                    pool.name, pool.spec.source, pool.spec.predicate, documents=len(docs),
                    tokens=sum(docs.values()), heldout_documents=count.documents - len(docs),
                    empty_documents=count.empty)
            report.pools = {name: report.pools[name] for name in recipe.pools}  # recipe order
            try:
                report.plans = plan_phases(recipe, {p.name: staged.documents(p.name) for p in pools}, skipped)
            except BudgetError as exc:
                if not dry_run:
                    raise
                report.error = str(exc)
            if dry_run:
                return report
            report.manifest = _write_shards(recipe, tok, report, staged, work, steps)
            shutil.rmtree(os.path.join(work, STAGING))
            _write_exports_and_card(recipe, report.manifest, work, formats, steps)
            _check_output(output)  # what is there now is still a token mix (or nothing) before it is replaced
        return report
    finally:
        con.close()


def _work_folder(output: str, dry_run: bool):
    """Where the mix is built: for a dry run a temporary folder, removed after; else a folder beside `output`
    that replaces it once complete (the previous mix stays until then)."""
    return tempfile.TemporaryDirectory(prefix="assay-mix-dry-") if dry_run else atomic_folder(output)


def _tokenizer(recipe: Recipe, con, pools: list[PoolFiles], work: str, steps: _Steps):
    from assay.trainer.token_shards import TOKENIZER_FILE
    from assay.trainer.tokenizer import load_tokenizer, save_tokenizer, train_bpe

    spec = recipe.tokenizer
    if spec.path:
        with steps.step(f"loading tokenizer {spec.path}"):
            tok = load_tokenizer(spec.path)
    else:
        with steps.step(f"training a byte-level BPE (vocab {spec.vocab_size}) on a sample of the pools"):
            texts = tokenizer_sample(con, pools, recipe)
            if not texts:
                raise BudgetError("no documents to train the tokenizer on: every pool is empty or held out; "
                                  "check the pools' predicates or give tokenizer.path")
            tok = train_bpe(texts, spec.vocab_size, spec.min_frequency)
    save_tokenizer(tok, os.path.join(work, TOKENIZER_FILE))
    return tok


def _tokenize(recipe: Recipe, pools: list[PoolFiles], work: str, dry_run: bool, steps: _Steps) -> None:
    from assay.curation.shards import shard_files
    from assay.pipelines.mix.tokenize_beam import chunk_tasks, raise_failures, run_tokenize, write_empty_heldout
    from assay.trainer.token_shards import TOKENIZER_FILE

    heldout = None if dry_run else work
    staging = os.path.join(work, STAGING, "tokens")
    total = len(chunk_tasks(pools, recipe.runner.rows_per_task))
    steps.watch(f"tokenizing with Beam ({recipe.runner.workers} workers, {recipe.runner.mode}): work items",
                lambda: run_tokenize(pools, os.path.join(work, TOKENIZER_FILE), staging, heldout,
                                     recipe.heldout_fraction, recipe.runner),
                total, lambda: len(shard_files(staging)))
    raise_failures(staging, repr(recipe.tokenizer.path) if recipe.tokenizer.path else "trained from the pools")
    if heldout is not None:
        for pool in pools:
            write_empty_heldout(heldout, pool.name)


def _write_shards(recipe: Recipe, tok, report: MixReport, staged: StagedTokens, work: str, steps: _Steps) -> dict:
    from assay.pipelines.mix.pack import pack_phase
    from assay.trainer.token_shards import TOKENIZER_FILE, TokenShardWriter, heldout_file, row_length
    from assay.trainer.tokenizer import eos_id, tokenizer_hash

    vocab = tok.get_vocab_size(with_added_tokens=True)
    writer = TokenShardWriter(work, recipe.seq_len, vocab, recipe.sequences_per_shard)
    phase_info = {}
    for i, plan in enumerate(report.plans):
        with steps.step(f"packing phase {plan.name!r}: {plan.sequences:,} sequences of "
                        f"{row_length(recipe.seq_len)}"):
            packed = pack_phase([staged.tokens(pool, doc_id) for pool, doc_id, _ in plan.docs], plan.sequences,
                                recipe.seq_len, recipe.seed, i)
            writer.add(packed.rows, plan.name, packed.packed_positions)
        phase_info[plan.name] = {
            "budget": plan.budget,
            "documents": len(plan.docs),
            "document_tokens": plan.document_tokens,
            "dropped_tail_tokens": packed.dropped_tail_tokens,
            "pools": {name: vars(use) for name, use in plan.pools.items()},
        }
    found = [p for p in report.pools.values() if not p.skipped]
    heldout_files = [heldout_file(p.name) for p in found]
    extra = {
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_hash": tokenizer_hash(tok),
        "eos_id": eos_id(tok),
        "seed": recipe.seed,
        "recipe": recipe_dict(recipe),
        "recipe_hash": recipe_hash(recipe),
        "pools": {name: {k: v for k, v in vars(p).items() if k != "name"} | (
            {"heldout": heldout_file(name)} if not p.skipped else {})
            for name, p in report.pools.items()},
    }
    with steps.step("writing index and manifest"):
        return writer.close(extra=extra, phase_info=phase_info, files=[TOKENIZER_FILE, *heldout_files])


def _write_exports_and_card(recipe: Recipe, manifest: dict, work: str, formats: tuple[str, ...], steps: _Steps) -> None:
    """Token files for other trainers (assay/trainer/token_export.py) and README.md, inside the work folder, so they
    appear with the shards or not at all."""
    from assay.pipelines.job.card import mix_card, write_card
    from assay.trainer.token_export import export_tokens

    exports = {}
    if formats:
        with steps.step(f"exporting {', '.join(formats)} token files"):
            exports = export_tokens(work, formats)
    write_card(work, mix_card(manifest, recipe.license, exports))


def _check_output(output: str) -> None:
    """An existing output is replaced only if it is a token mix (or empty)."""
    from assay.groundwork.atomic import check_replaceable
    from assay.trainer.token_shards import ShardFolder

    check_replaceable(output, ShardFolder.is_finished, "a token-shard directory")
