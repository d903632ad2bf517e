"""DuckDB over a curation output: views `docs`, `rejected` and `stats` for `assay sql`.

The query is the user's own and stays free-form SQL, but the connection can read the output's shards only
(curation/duckdb_locked.py): no other file read or written, no database attached, no extension loaded."""
from __future__ import annotations

import json
import os

import duckdb

from curation.duckdb_locked import locked_connection
from curation.shards import DOCS_DIR, FUNNEL_FILE, LEDGER_DIR, STATS_DIR, shard_files


def _listed(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def connect(output: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the output's views; clear error when it is not an output."""
    docs = shard_files(os.path.join(os.path.abspath(output), DOCS_DIR))
    rejected = shard_files(os.path.join(os.path.abspath(output), LEDGER_DIR))
    if not docs and not rejected:
        raise FileNotFoundError(
            f"{output!r} has no docs/ or rejected/ shards: point --output at a folder written by `assay run`")
    con = locked_connection([*docs, *rejected])
    if docs:
        con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet({_listed(docs)}, union_by_name = true)")
    if rejected:
        con.execute(f"CREATE VIEW rejected AS SELECT * FROM read_parquet({_listed(rejected)}, union_by_name = true)")
    funnel = os.path.join(output, STATS_DIR, FUNNEL_FILE)
    if os.path.exists(funnel):
        with open(funnel) as fh:
            rows = json.load(fh)["stages"]
        con.execute("CREATE TABLE stats (stage VARCHAR, docs_in BIGINT, docs_out BIGINT, dropped BIGINT, "
                    "bytes_in BIGINT, bytes_out BIGINT, reasons VARCHAR)")
        con.executemany("INSERT INTO stats VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (r["stage"], r["docs_in"], r["docs_out"], sum(r["rejected"].values()), r["bytes_in"], r["bytes_out"],
             json.dumps(r["rejected"])) for r in rows])
    return con


def run_query(output: str, query: str):
    """(column names, rows) of a query over the output's views."""
    con = connect(output)
    try:
        cur = con.execute(query)
        names = [d[0] for d in cur.description] if cur.description else []
        return names, cur.fetchall()
    finally:
        con.close()


def export_query(output: str, query: str, path: str) -> None:
    """Write a query's result as Parquet (atomically)."""
    from curation.shards import write_table_atomic

    con = connect(output)
    try:
        table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    write_table_atomic(table, os.path.abspath(path))
