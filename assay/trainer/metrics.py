"""Training metrics: one JSON object per line in <out>/metrics.jsonl, and a rich progress bar."""
from __future__ import annotations

import json
import os
from typing import Any


class MetricsLog:
    """Appends one flushed line per record, so a killed run keeps every logged step."""

    def __init__(self, path: str, enabled: bool = True):
        self.path, self.enabled = path, enabled
        if enabled:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._fh.write(json.dumps(record, sort_keys=True) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    """Records of a metrics file; for a step logged twice (a resumed run) the later record wins."""
    by_key: dict[Any, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                rec = json.loads(line)
                by_key[(rec.get("kind", "train"), rec.get("step", n))] = rec
    return sorted(by_key.values(), key=lambda r: (r.get("kind", "train") != "train", r.get("step", 0)))


class ProgressBar:
    """A rich progress bar showing the latest loss, lr, grad norm, tok/s and MFU; a no-op when disabled."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                  TextColumn("{task.fields[info]}"))
        self._task = self._progress.add_task("train", total=total, completed=start, info="")
        self._progress.start()

    def update(self, step: int, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        info = (f"loss {record['loss']:.4f}  lr {record['lr']:.2e}  gnorm {record['grad_norm']:.3f}  "
                f"{record['tok_s']:,.0f} tok/s  MFU {100 * record['mfu']:.1f}%")
        if "moe_load_max" in record:
            info += f"  MoE max load {record['moe_load_max']:.2f}"
        self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()
