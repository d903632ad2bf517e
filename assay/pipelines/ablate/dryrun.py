"""`assay ablate PLAN --dry-run`: the cells, their token budgets and estimated compute, whether each recipe's
pools can be read today, and which cells a run would skip, without mixing or training anything.

A cell counts as done only when its result exists and was computed with the config the run would use now
(the same hash the run compares); a result from another config is "stale: reruns"."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from assay.pipelines.ablate.cells import Cell, plan_cells
from assay.pipelines.ablate.plan import Plan
from assay.pipelines.ablate.runner import cell_config, mix_cache_dir, result_path, stored_config_hash


@dataclass
class DryRun:
    cells: list[Cell]
    state: dict[str, str]  # cell key -> "done" | "stale: reruns" | "to run" | "unavailable"
    recipe_status: dict[str, str]  # recipe -> "ok" or the reason it cannot be mixed
    eval_status: str  # "ok", or why the plan's eval sets cannot be built (the run would stop there)
    total_flops: float
    remaining_flops: float


def check_pools(recipe) -> str:
    """"ok", or why the recipe's pools cannot be read (missing shards, a column the predicate needs)."""
    from assay.groundwork.config import ConfigError
    from assay.pipelines.mix import count_pool, pools_connection, resolve_pools

    try:
        pools, skipped = resolve_pools(recipe, warn=lambda _: None)
        con = pools_connection(pools)
        try:
            for pool in pools:
                count_pool(con, pool)
        finally:
            con.close()
    except ConfigError as exc:
        return str(exc)
    if skipped:
        return "ok (optional pools skipped: " + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")"
    return "ok"


def eval_info_now(plan: Plan) -> tuple[dict | None, str]:
    """The eval-set record a run would hash into each cell's config, built in a temporary folder (the dry run
    writes nothing under the output); (None, reason) when the sets cannot be built."""
    from assay.groundwork.config import ConfigError
    from assay.pipelines.ablate.evalsets import build_eval_sets

    try:
        with tempfile.TemporaryDirectory(prefix="assay-dryrun-") as tmp:
            return build_eval_sets(plan, tmp), "ok"
    except ConfigError as exc:
        return None, str(exc)


def dry_run(plan: Plan, output: str | None = None) -> DryRun:
    from assay.pipelines.ablate.lineage import json_hash

    output = os.path.abspath(output or plan.output)
    cells = plan_cells(plan)
    status = {name: check_pools(next(c.resolved for c in cells if c.recipe == name)) for name in plan.recipes}
    eval_info, eval_status = eval_info_now(plan)
    state = {}
    for cell in cells:
        stored = stored_config_hash(output, cell)
        current = json_hash(cell_config(plan, cell, eval_info)) if eval_info is not None else None
        if stored and stored == current and os.path.isfile(result_path(output, cell)):
            state[cell.key] = "done"  # the order of the run's own checks
        elif not status[cell.recipe].startswith("ok"):
            state[cell.key] = "unavailable"
        elif stored and current and stored != current:
            state[cell.key] = "stale: reruns"
        else:
            state[cell.key] = "to run"
    remaining = sum(c.flops for c in cells if state[c.key] in ("to run", "stale: reruns"))
    return DryRun(cells, state, status, eval_status, sum(c.flops for c in cells), remaining)


def render(plan: Plan, result: DryRun, console, output: str | None = None) -> None:
    from rich.table import Table

    from assay.groundwork.terminal import escaped
    from assay.groundwork.terminal import plain_text as t
    from assay.pipelines.ablate.mixcache import cached_mix
    from assay.pipelines.mix import pools_fingerprint

    cache = mix_cache_dir(plan, os.path.abspath(output or plan.output))
    table = Table(title=f"ablation plan {escaped(repr(plan.name))}: {len(result.cells)} cells")
    for col in ("recipe", "size", "seed", "params", "steps", "train tokens", "FLOPs (6ND)", "mix", "state"):
        table.add_column(col, justify="right" if col in ("params", "steps", "train tokens", "FLOPs (6ND)") else "left")
    for cell in result.cells:
        cached = cached_mix(cache, cell.recipe_hash, pools_fingerprint(cell.resolved))
        mix = "cached" if cached else f"to build ({cell.recipe_hash[:12]})"
        table.add_row(t(cell.recipe), t(cell.size), str(cell.seed), f"{cell.params:,}",
                      str(cell.steps), f"{cell.tokens:,}", f"{cell.flops:.3g}", mix, result.state[cell.key])
    console.print(table)
    for name, ref in plan.recipes.items():
        if ref.label:
            console.print(f"{escaped(name)}: {escaped(ref.label)}")
    for name, reason in result.recipe_status.items():
        if not reason.startswith("ok"):
            needs = plan.recipes[name].needs
            console.print(f"[yellow]recipe {escaped(repr(name))} cannot be mixed now:[/yellow] {escaped(reason)}"
                          + (f"\n  needs: {escaped(needs)}" if needs else ""))
        elif reason != "ok":
            console.print(f"recipe {escaped(repr(name))}: {escaped(reason)}")
    if result.eval_status != "ok":
        console.print("[yellow]the eval sets cannot be built now (a run would stop):[/yellow] "
                      + escaped(result.eval_status))
    console.print(f"estimated compute: {result.total_flops:.3g} FLOPs in all, {result.remaining_flops:.3g} "
                  "still to run (6 x parameters x training tokens; evaluation not counted)")
