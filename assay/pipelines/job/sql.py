"""DuckDB over a curation output: views `docs`, `rejected` and `stats` for `assay sql`.

The query is the user's own and stays free-form SQL, but the connection can read the output's shards only
(assay/curation/duckdb_locked.py): no other file read or written, no database attached, no extension loaded."""
from __future__ import annotations

import json
import os

import duckdb

from assay.curation.document import LEDGER_SCHEMA
from assay.curation.duckdb_locked import locked_connection
from assay.curation.shards import (
    DOCS_DIR,
    FUNNEL_FILE,
    LEDGER_DIR,
    STATS_DIR,
    OutputError,
    checked_run,
    doc_schema,
    shard_files,
)


def _listed(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def connect(output: str, verify: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the output's views (of its published run, checked against run.json's
    checksums unless `verify` is off); OutputError / FileNotFoundError in one paragraph when it cannot be read."""
    folder, _ = checked_run(os.path.abspath(output), verify=verify)
    docs = shard_files(os.path.join(folder, DOCS_DIR))
    rejected = shard_files(os.path.join(folder, LEDGER_DIR))
    if not docs and not rejected:
        raise FileNotFoundError(
            f"{output!r} has no docs/ or rejected/ shards: point --output at a folder written by `assay run`")
    con = locked_connection([*docs, *rejected])
    for view, files, schema in (("docs", docs, None), ("rejected", rejected, LEDGER_SCHEMA)):
        if files:
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({_listed(files)}, union_by_name = true)")
        else:  # e.g. rejected/ removed by hand: the view exists and is empty, so queries still name it
            columns = ", ".join(f'CAST(NULL AS {_SQL_TYPES.get(str(f.type), "VARCHAR")}) AS "{f.name}"'
                                for f in (schema or doc_schema({})))
            con.execute(f"CREATE VIEW {view} AS SELECT {columns} WHERE false")
            _warn(f"{output}: no {view} shards ({os.path.join(folder, DOCS_DIR if view == 'docs' else LEDGER_DIR)} "
                  f"is missing or empty), so the {view} view is empty; if that is unexpected, run the job again")
    funnel = os.path.join(folder, STATS_DIR, FUNNEL_FILE)
    rows = []
    if os.path.exists(funnel):
        try:
            rows = read_funnel(funnel)["stages"]
        except OutputError as exc:  # the shards are still readable: the stats table stays empty
            _warn(f"{exc} (the stats table is empty)")
    con.execute("CREATE TABLE stats (stage VARCHAR, docs_in BIGINT, docs_out BIGINT, dropped BIGINT, "
                "bytes_in BIGINT, bytes_out BIGINT, reasons VARCHAR)")
    if rows:
        con.executemany("INSERT INTO stats VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (r["stage"], r["docs_in"], r["docs_out"], sum(r["rejected"].values()), r["bytes_in"], r["bytes_out"],
             json.dumps(r["rejected"])) for r in rows])
    return con


_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN", "float": "FLOAT"}


def _warn(message: str) -> None:
    import sys

    print(f"assay: {message}", file=sys.stderr)


def read_funnel(path: str) -> dict:
    """stats/funnel.json; OutputError in one paragraph when it is cut short or not a funnel."""
    try:
        with open(path, encoding="utf-8") as fh:
            funnel = json.load(fh)
        if not isinstance(funnel, dict) or not isinstance(funnel.get("stages"), list):
            raise ValueError("no 'stages' list")
        for row in funnel["stages"]:
            _ = (row["stage"], row["docs_in"], row["docs_out"], row["bytes_in"], row["bytes_out"],
                 dict(row["rejected"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{path} is unreadable, cut short or not a funnel ({exc}); the "
                          "shards may still be fine (`assay sql` reads them without it) but the per-stage counts "
                          "are lost: run the job again into this folder to rewrite it") from None
    return funnel


def run_query(output: str, query: str, verify: bool = True):
    """(column names, rows) of a query over the output's views."""
    con = connect(output, verify)
    try:
        cur = con.execute(query)
        names = [d[0] for d in cur.description] if cur.description else []
        return names, cur.fetchall()
    finally:
        con.close()


def export_query(output: str, query: str, path: str, verify: bool = True) -> None:
    """Write a query's result as Parquet (atomically)."""
    from assay.curation.shards import write_table_atomic

    con = connect(output, verify)
    try:
        table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    write_table_atomic(table, os.path.abspath(path))
