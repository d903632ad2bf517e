"""Coverage report of a synthetic output: what was generated per topic x audience x style, how long it
is, and why anything was rejected. Computed with DuckDB over the output's shards."""
from __future__ import annotations

import json
import os

from assay.curation.shards import DOCS_DIR, LEDGER_DIR, STATS_DIR
from assay.groundwork.atomic import write_bytes_atomic

LABEL_COLUMNS = {"generator": "VARCHAR", "topic": "VARCHAR", "audience": "VARCHAR", "style": "VARCHAR",
                 "mode": "VARCHAR", "tokens_out": "BIGINT", "finish_reason": "VARCHAR"}


def _rows(con, sql: str) -> list[dict]:
    table = con.sql(sql).to_arrow_table()
    return table.to_pylist()


def coverage(output: str) -> dict:
    import duckdb

    docs = os.path.join(output, DOCS_DIR, "*.parquet")
    ledger = os.path.join(output, LEDGER_DIR, "*.parquet")
    con = duckdb.connect()
    try:
        con.sql(f"CREATE VIEW raw_docs AS SELECT * FROM read_parquet('{docs}', union_by_name = true)")
        present = {r[0] for r in con.sql("DESCRIBE raw_docs").fetchall()}
        # outputs of other jobs (e.g. decontaminated web shards) lack the synthetic columns: report them as empty
        filled = ", ".join(f"NULL::{kind} AS {name}" for name, kind in LABEL_COLUMNS.items() if name not in present)
        con.sql(f"CREATE VIEW docs AS SELECT *{', ' + filled if filled else ''} FROM raw_docs")
        con.sql(f"CREATE VIEW rejected AS SELECT * FROM read_parquet('{ledger}', union_by_name = true)")
        cells = _rows(con, """
            SELECT coalesce(generator, '') AS generator, coalesce(topic, '') AS topic,
                   coalesce(audience, '') AS audience, coalesce(style, '') AS style, coalesce(mode, '') AS mode,
                   count(*) AS documents, sum(length(text)) AS chars
            FROM docs GROUP BY ALL ORDER BY ALL""")
        lengths = _rows(con, """
            SELECT coalesce(generator, '') AS generator, count(*) AS documents,
                   min(length(text)) AS min_chars, quantile_cont(length(text), 0.5) AS median_chars,
                   avg(length(text)) AS mean_chars, max(length(text)) AS max_chars,
                   sum(tokens_out) AS tokens_out, sum(CASE WHEN finish_reason = 'length' THEN 1 ELSE 0 END) AS truncated
            FROM docs GROUP BY ALL ORDER BY ALL""")
        reasons = _rows(con, """
            SELECT stage, reason, count(*) AS records FROM rejected GROUP BY ALL
            ORDER BY records DESC, stage, reason""")
        totals = {"documents": sum(c["documents"] for c in cells), "rejected": sum(r["records"] for r in reasons),
                  "cells": len(cells)}
    finally:
        con.close()
    return {"totals": totals, "cells": cells, "lengths": lengths, "rejections": reasons}


def to_markdown(report: dict) -> str:
    lines = ["# Synthetic data coverage", "",
             f"{report['totals']['documents']} documents in {report['totals']['cells']} cells; "
             f"{report['totals']['rejected']} rejected.", "",
             "| generator | topic | audience | style | mode | documents | chars |", "|---|---|---|---|---|---:|---:|"]
    lines += [f"| {c['generator']} | {c['topic']} | {c['audience']} | {c['style']} | {c['mode']} | {c['documents']} | "
              f"{c['chars']} |" for c in report["cells"]]
    lines += ["", "| generator | documents | min | median | mean | max chars | tokens out | truncated |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['generator']} | {r['documents']} | {r['min_chars']} | {r['median_chars']} | "
              f"{round(r['mean_chars'] or 0, 1)} | {r['max_chars']} | {r['tokens_out']} | {r['truncated']} |"
              for r in report["lengths"]]
    lines += ["", "| stage | reason | records |", "|---|---|---:|"]
    lines += [f"| {r['stage']} | {r['reason']} | {r['records']} |" for r in report["rejections"]]
    return "\n".join(lines) + "\n"


def write_coverage(output: str) -> dict:
    """Writes OUTPUT/stats/coverage.json and coverage.md; returns the report."""
    report = coverage(output)
    stats = os.path.join(output, STATS_DIR)
    write_bytes_atomic(json.dumps(report, indent=2, default=float).encode(), os.path.join(stats, "coverage.json"))
    write_bytes_atomic(to_markdown(report).encode(), os.path.join(stats, "coverage.md"))
    return report
