"""The per-pool and per-phase token tables `assay mix --dry-run` prints (and `assay mix` after writing)."""
from __future__ import annotations

from assay.pipelines.mix.build import MixReport
from assay.pipelines.mix.recipe import Recipe
from assay.trainer.token_shards import row_length


def budget_rows(recipe: Recipe, report: MixReport) -> list[dict]:
    """One row per (phase, pool): the tokens asked for, what the pool holds, and the passes over it needed
    so far in the mix (more than max_repeats means the budget cannot be met)."""
    used: dict[str, int] = {}
    rows = []
    for phase, (sequences, quotas) in zip(recipe.phases, report.quotas):
        for pool, (weight, quota) in quotas.items():
            have = report.pools[pool].tokens
            used[pool] = used.get(pool, 0) + quota
            passes = used[pool] / have if have else float("inf")
            limit = recipe.pools[pool].max_repeats
            rows.append({"phase": phase.name, "sequences": sequences, "pool": pool, "weight": weight,
                         "tokens": quota, "pool_tokens": have, "passes": passes, "max_repeats": limit,
                         "ok": passes <= limit})
    return rows


def render(recipe: Recipe, report: MixReport, console) -> None:
    """The tables; names, sources and predicates come from a recipe file and are shown as plain text."""
    from rich.table import Table

    from assay.groundwork.terminal import escaped
    from assay.groundwork.terminal import plain_text as t

    pools = Table(title="pools (tokens include one EOS per document)")
    for col in ("pool", "source", "predicate", "documents", "held out", "tokens", "max repeats"):
        pools.add_column(col, justify="right" if col in ("documents", "held out", "tokens", "max repeats") else "left")
    for name, p in report.pools.items():
        if p.skipped:
            pools.add_row(t(name), t(p.source), t(p.predicate), "-", "-", t(f"skipped: {p.skipped}"), "-")
        else:
            pools.add_row(t(name), t(p.source), t(p.predicate), f"{p.documents:,}", f"{p.heldout_documents:,}",
                          f"{p.tokens:,}", str(recipe.pools[name].max_repeats))
    console.print(pools)
    phases = Table(title=f"phases (sequences of {row_length(recipe.seq_len)} tokens)")
    for col in ("phase", "sequences", "pool", "weight", "tokens", "pool tokens", "passes so far", "max repeats", ""):
        phases.add_column(col, justify="left" if col in ("phase", "pool", "") else "right")
    for r in budget_rows(recipe, report):
        phases.add_row(t(r["phase"]), f"{r['sequences']:,}", t(r["pool"]), f"{r['weight']:.3f}", f"{r['tokens']:,}",
                       f"{r['pool_tokens']:,}", f"{r['passes']:.2f}", str(r["max_repeats"]),
                       "ok" if r["ok"] else "[red]too few tokens[/red]")
    console.print(phases)
    if report.error:
        console.print(f"[red]cannot meet the budget:[/red] {escaped(report.error)}")
