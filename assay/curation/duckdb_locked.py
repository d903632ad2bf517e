"""DuckDB connections that can read the files they were opened for and nothing else.

SQL that comes with data (a recipe's pool predicate, an ablation plan's eval sets) or runs over data (the
views of `assay sql`) must not reach the machine through DuckDB: no other file read (`read_text('/etc/shadow')`,
`glob`), no file written (`COPY ... TO`), no database attached, no extension installed or loaded, and no
setting changed back. A locked connection sets `allowed_paths` / `allowed_directories` to what it was opened
for, turns external access off, stops extension auto-install and auto-load, and locks its configuration.
"""
from __future__ import annotations

import os
from collections.abc import Iterable


def locked_connection(files: Iterable[str] = (), directories: Iterable[str] = ()):
    """An in-memory connection that may read `files` (and files under `directories`) only; a query that reaches
    for anything else fails with DuckDB's PermissionException. Views over those files can be made after."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                 "allow_community_extensions": False})
    try:
        paths = sorted({f if "://" in f else os.path.abspath(f) for f in files})
        folders = sorted({os.path.join(os.path.abspath(d), "") for d in directories})
        if paths:
            con.execute("SET allowed_paths = ?", [paths])
        if folders:
            con.execute("SET allowed_directories = ?", [folders])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
