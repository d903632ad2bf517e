"""What a curation run did with each document: kept, or dropped at which stage and why."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow.parquet as pq

from curation.shards import DOCS_DIR, LEDGER_DIR, shard_files

KEPT = "kept"


@dataclass(frozen=True)
class Outcome:
    stage: str  # "kept", or the stage that dropped the document
    reason: str = ""

    @property
    def kept(self) -> bool:
        return self.stage == KEPT


def read_outcomes(run_dir: str) -> dict[str, Outcome]:
    """document id -> Outcome, from an `assay run` output folder's docs/ and rejected/ shards."""
    for sub in (DOCS_DIR, LEDGER_DIR):
        if not os.path.isdir(os.path.join(run_dir, sub)):
            raise FileNotFoundError(f"{run_dir}: no {sub}/ folder; pass the output folder of `assay run`")
    outcomes: dict[str, Outcome] = {}
    for path in shard_files(os.path.join(run_dir, LEDGER_DIR)):
        table = pq.read_table(path, columns=["id", "stage", "reason"])
        for rid, stage, reason in zip(*(table.column(c).to_pylist() for c in ("id", "stage", "reason"))):
            outcomes[rid] = Outcome(stage, reason or "")
    for path in shard_files(os.path.join(run_dir, DOCS_DIR)):
        for rid in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            outcomes[rid] = Outcome(KEPT)
    return outcomes
