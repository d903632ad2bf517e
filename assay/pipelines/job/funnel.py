"""The per-stage funnel (documents and bytes in/out, drops by reason) and signal histograms.

Counts come from the Beam counters every stage keeps (assay/pipelines/job/beam_fns.py), so they are exact on any
runner that reports metrics; on one that does not (the DaskRunner) the document counts are read back from the
shards (`funnel_from_outputs`). Histograms are drawn from the published shards with DuckDB: kept documents against the
dropped
ones that carried the same signal.
"""
from __future__ import annotations

import os

from assay.curation.shards import DOCS_DIR, FUNNEL_FILE, LEDGER_DIR, STATS_DIR
from assay.groundwork.atomic import atomic_path
from assay.pipelines.job.beam_fns import NAMESPACE


def funnel_from_metrics(result, order: list[str]) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    stages: dict[str, dict] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        parts = counter.key.metric.name.split("|")
        stage = stages.setdefault(parts[0], {"docs_in": 0, "docs_out": 0, "bytes_in": 0, "bytes_out": 0,
                                             "rejected": {}, "rejected_bytes": {}})
        if len(parts) == 2:
            stage[parts[1]] += value
        else:
            stage[parts[1]][parts[2]] = stage[parts[1]].get(parts[2], 0) + value
    rows = []
    for name in order + sorted(set(stages) - set(order)):
        s = stages.get(name, {"docs_in": 0, "docs_out": 0, "bytes_in": 0, "bytes_out": 0,
                              "rejected": {}, "rejected_bytes": {}})
        rows.append({"stage": name, **s, "rejected": dict(sorted(s["rejected"].items())),
                     "rejected_bytes": dict(sorted(s["rejected_bytes"].items()))})
    read = rows[0] if rows else None  # the source's stage: what entered the job
    total_in = read["docs_in"] if read else 0
    total_rejected = sum(sum(r["rejected"].values()) for r in rows)
    kept = rows[-1]["docs_out"] if rows else 0
    return {"stages": rows, "totals": {"read": total_in, "kept": kept, "rejected": total_rejected,
                                       "bytes_read": read["bytes_in"] if read else 0,
                                       "bytes_kept": rows[-1]["bytes_out"] if rows else 0}}


def funnel_from_outputs(folder: str, order: list[str]) -> dict:
    """The funnel's document counts read back from a run's shards, for runners without Beam metrics (the
    DaskRunner): every read document is either kept (docs/) or in the ledger under the stage that dropped it,
    so each stage's docs out are its docs in less its drops, in stage order. Byte counts are not recorded
    this way (0, and "bytes_counted": false)."""
    import duckdb

    con = duckdb.connect()
    pattern = lambda sub: os.path.join(folder, sub, "*.parquet").replace("'", "''")  # noqa: E731
    kept = con.execute(f"SELECT count(*) FROM read_parquet('{pattern(DOCS_DIR)}')").fetchone()[0]
    drops = con.execute(f"SELECT stage, reason, count(*) FROM read_parquet('{pattern(LEDGER_DIR)}') "
                        "GROUP BY ALL").fetchall()
    con.close()
    by_stage: dict[str, dict[str, int]] = {}
    for stage, reason, n in drops:
        by_stage.setdefault(stage, {})[reason] = int(n)
    total_rejected = sum(sum(r.values()) for r in by_stage.values())
    rows, docs = [], kept + total_rejected
    for name in order + sorted(set(by_stage) - set(order)):
        rejected = dict(sorted(by_stage.get(name, {}).items()))
        out = docs - sum(rejected.values())
        rows.append({"stage": name, "docs_in": docs, "docs_out": out, "bytes_in": 0, "bytes_out": 0,
                     "rejected": rejected, "rejected_bytes": {}})
        docs = out
    return {"stages": rows, "bytes_counted": False,
            "totals": {"read": kept + total_rejected, "kept": kept, "rejected": total_rejected, "bytes_read": 0,
                       "bytes_kept": 0}}


def load_funnel(output: str, verify: bool = True) -> dict:
    """The funnel of an output's published run, after checking its run.json (and, with `verify`, the shards'
    checksums); FileNotFoundError / assay.curation.shards.OutputError in one paragraph when it cannot be read."""
    from assay.curation.shards import checked_run
    from assay.pipelines.job.sql import read_funnel

    folder, _ = checked_run(os.path.abspath(output), verify=verify)
    path = os.path.join(folder, STATS_DIR, FUNNEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no funnel at {path}: is {output!r} the output folder of `assay run`?")
    return read_funnel(path)


def funnel_table(funnel: dict):
    from rich.table import Table

    table = Table(title="funnel", show_lines=False)
    for col, justify in (("stage", "left"), ("docs in", "right"), ("docs out", "right"), ("dropped", "right"),
                         ("MB in", "right"), ("MB out", "right"), ("top reasons", "left")):
        table.add_column(col, justify=justify)
    counted = funnel.get("bytes_counted", True)
    mb = (lambda n: f"{n / 1e6:.2f}") if counted else (lambda n: "-")  # noqa: E731
    for row in funnel["stages"]:
        reasons = sorted(row["rejected"].items(), key=lambda kv: (-kv[1], kv[0]))
        dropped = sum(row["rejected"].values())
        table.add_row(row["stage"], f"{row['docs_in']:,}", f"{row['docs_out']:,}", f"{dropped:,}",
                      mb(row["bytes_in"]), mb(row["bytes_out"]), ", ".join(f"{k} {v}" for k, v in reasons[:3]))
    t = funnel["totals"]
    table.caption = (f"read {t['read']:,} · kept {t['kept']:,} · rejected {t['rejected']:,}"
                     + (f" · {t['bytes_read'] / 1e6:.2f} MB -> {t['bytes_kept'] / 1e6:.2f} MB" if counted
                        else " · bytes not counted by this runner"))
    return table


def numeric_signals(con) -> list[str]:
    rows = con.execute("DESCRIBE docs").fetchall()
    numeric = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT")
    return [name for name, dtype, *_ in rows if dtype in numeric]


def draw_histograms(output: str) -> list[str]:
    """One PNG per numeric signal: kept documents vs dropped documents that carry the signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assay.pipelines.job.sql import connect

    con = connect(output, verify=False)  # a run's own staged shards, just written
    written = []
    for column in numeric_signals(con):
        kept = [r[0] for r in con.execute(f'SELECT "{column}" FROM docs WHERE "{column}" IS NOT NULL').fetchall()]
        dropped = [r[0] for r in con.execute(
            f"SELECT TRY_CAST(json_extract(signals, '$.{column}') AS DOUBLE) AS v FROM rejected "
            f"WHERE v IS NOT NULL").fetchall()]
        if not kept and not dropped:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist([kept, dropped], bins=40, label=["kept", "dropped"], color=["#3a7", "#c55"], stacked=False)
        ax.set_title(column)
        ax.set_ylabel("documents")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(output, STATS_DIR, f"hist_{column}.png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
        written.append(path)
    con.close()
    return written
