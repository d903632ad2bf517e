"""What a curation run did with each document: kept, or dropped at which stage and why."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from assay.curation.dedup import FUZZY_DEDUP
from assay.curation.shards import DOCS_DIR, LEDGER_DIR, checked_run, shard_files

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
    run_dir, _ = checked_run(run_dir, verify=False)  # the published run's folder, its run.json checked
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


def read_merges(run_dir: str) -> list[tuple[str, str, float]]:
    """Every near-duplicate merge the run made, as (dropped id, surviving id, word-5-gram Jaccard of their texts).

    A fuzzy-dedup ledger row names its cluster's representative, the page dedup kept (and a later stage may
    still have dropped). Measuring each merged pair says whether dedup ever merges pages that are not
    near-duplicates (clusters are transitive: A~B~C can merge C into a quite different A), on every page of
    the corpus, not only on the constructed pairs."""
    import pyarrow.compute as pc

    from assay.curation.dedup import jaccard

    run_dir, _ = checked_run(run_dir, verify=False)
    ledger = shard_files(os.path.join(run_dir, LEDGER_DIR))
    dropped: list[tuple[str, str]] = []
    for path in ledger:
        table = pq.read_table(path, columns=["id", "stage", "signals"])
        table = table.filter(pc.equal(table.column("stage"), FUZZY_DEDUP))
        for rid, signals in zip(table.column("id").to_pylist(), table.column("signals").to_pylist()):
            rep = json.loads(signals).get("minhash_cluster") if signals else None
            if rep:
                dropped.append((rid, str(rep)))
    if not dropped:
        return []
    wanted = pa.array(sorted({i for pair in dropped for i in pair}))
    texts: dict[str, str] = {}  # only the merged pages' texts, not the whole run's
    for path in ledger:
        table = pq.read_table(path, columns=["id", "text", "text_chars"])
        table = table.filter(pc.is_in(table.column("id"), value_set=wanted))
        for rid, text, chars in zip(*(table.column(c).to_pylist() for c in ("id", "text", "text_chars"))):
            if chars is not None and len(text or "") < chars:
                raise ValueError(f"{run_dir}: the ledger keeps excerpts of the dropped pages, so merges cannot be "
                                 "measured; run again with `assay run --ledger-full-text` (assay evaluate does)")
            texts[rid] = text or ""
    for path in shard_files(os.path.join(run_dir, DOCS_DIR)):
        table = pq.read_table(path, columns=["id", "text"])
        table = table.filter(pc.is_in(table.column("id"), value_set=wanted))
        texts.update(zip(table.column("id").to_pylist(), (t or "" for t in table.column("text").to_pylist())))
    return [(rid, rep, round(jaccard(texts[rid], texts[rep]), 4)) for rid, rep in sorted(dropped) if rep in texts]
