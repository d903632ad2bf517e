"""A live progress view for local runs: documents done and kept per stage, read from worker heartbeats."""
from __future__ import annotations

import glob
import json
import os
import threading
import time


def read_progress(progress_dir: str) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for path in glob.glob(os.path.join(progress_dir, "*.json")):
        try:
            with open(path) as fh:
                item = json.load(fh)
        except (OSError, ValueError):
            continue  # being replaced right now
        t = totals.setdefault(item["stage"], {"done": 0, "kept": 0})
        t["done"] += item["done"]
        t["kept"] += item["kept"]
    return totals


def watch(thread: threading.Thread, progress_dir: str, order: list[str], interval: float = 0.5) -> None:
    """Render until `thread` ends; falls back to a line every 10 s when not on a terminal."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(stderr=True)
    started = time.time()

    def render() -> Table:
        totals = read_progress(progress_dir)
        table = Table(title=f"assay run · {time.time() - started:,.0f}s", box=None)
        table.add_column("stage")
        table.add_column("done", justify="right")
        table.add_column("kept", justify="right")
        for stage in order:
            if stage in totals:
                table.add_row(stage, f"{totals[stage]['done']:,}", f"{totals[stage]['kept']:,}")
        return table

    if console.is_terminal:
        with Live(render(), console=console, refresh_per_second=4, transient=True) as live:
            while thread.is_alive():
                thread.join(interval)
                live.update(render())
    else:
        last = 0.0
        while thread.is_alive():
            thread.join(interval)
            if time.time() - last >= 10:
                totals = read_progress(progress_dir)
                done = ", ".join(f"{s} {totals[s]['done']}" for s in order if s in totals)
                console.print(f"[{time.time() - started:,.0f}s] {done or 'starting workers...'}")
                last = time.time()
