"""Pools on disk: which Parquet files a pool reads, its DuckDB query, its counts, and the held-out rule.

A pool's predicate comes from a recipe file, which may be someone else's: it reaches DuckDB only as checked
by assay/pipelines/mix/predicate.py, and only on a connection that can read the pool's files and nothing else
(`pools_connection`)."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

from assay.curation.document import content_hash
from assay.curation.shards import document_shards
from assay.groundwork.config import ConfigError
from assay.pipelines.mix.predicate import checked_predicate
from assay.pipelines.mix.recipe import PoolSpec, Recipe

log = logging.getLogger(__name__)


@dataclass
class PoolFiles:
    name: str
    spec: PoolSpec
    files: list[str]
    #: the config field errors name ("pools.<name>" unless given, e.g. "eval.sets.<name>")
    prefix: str = ""
    #: the predicate as checked SQL (`pool_where`), computed once
    where: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"pools.{self.name}"


@dataclass
class PoolCount:
    """What DuckDB sees in a pool before tokenizing: matching documents, and those with empty text."""

    documents: int
    empty: int
    chars: int


def pool_files(name: str, spec: PoolSpec) -> list[str]:
    """Parquet shards of a pool (assay.curation.shards.document_shards of its source); none when there are none."""
    try:
        return document_shards(spec.source)
    except FileNotFoundError:
        return []


#: the tail of each shard file hashed for the fingerprint below: the Parquet footer ends every file, so the tail
#: holds it (or its end, for a footer larger than this)
FOOTER_BYTES = 1 << 16


def pools_fingerprint(recipe: Recipe) -> str:
    """A fingerprint of the data a recipe's pools read now: per shard its name, size and Parquet footer (row
    groups, row counts, column chunk sizes and statistics). A pool rebuilt with other content changes it, a
    byte-identical rebuild does not; reading only footers keeps it cheap for large pools. Caches keyed on a
    recipe (the ablation's mixes and cells) include it, so they never reuse results of older data."""
    h = hashlib.sha256()
    for name in sorted(recipe.pools):
        h.update(f"pool\0{name}\0".encode())
        for path in pool_files(name, recipe.pools[name]):
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                fh.seek(max(0, size - FOOTER_BYTES))
                footer = fh.read()
            h.update(f"{os.path.basename(path)}\0{size}\0".encode())
            h.update(hashlib.sha256(footer).digest())
    return h.hexdigest()


def resolve_pools(recipe: Recipe, warn=log.warning) -> tuple[list[PoolFiles], dict[str, str]]:
    """(pools with files, {skipped optional pool: reason}); a required pool without shards is an error."""
    found, skipped = [], {}
    for name, spec in recipe.pools.items():
        files = pool_files(name, spec)
        if files:
            pool = PoolFiles(name, spec, files)
            pool_where(pool)  # a refused predicate stops every command here, dry runs included
            found.append(pool)
            continue
        reason = f"no Parquet shards in {spec.source!r}"
        if spec.optional:
            warn(f"pool {name!r} skipped (optional): {reason}")
            skipped[name] = reason
        else:
            raise ConfigError(f"pools.{name}.source: {reason}; run `assay run --output {spec.source}` first, "
                              f"fix the path, or set pools.{name}.optional = true")
    return found, skipped


def pool_columns(pool: PoolFiles) -> list[str]:
    """The column names of a pool's shards, read from their Parquet footers; an unreadable shard is a
    ConfigError naming the pool's source."""
    import pyarrow.parquet as pq

    names: dict[str, None] = {}
    for path in pool.files:
        try:
            names.update(dict.fromkeys(pq.read_schema(path).names))
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise ConfigError(f"{pool.prefix}.source: cannot read the Parquet shards in {pool.spec.source!r}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; re-run "
                              "`assay run` to rewrite them") from None
    return list(names)


def pool_where(pool: PoolFiles) -> str:
    """The pool's predicate as the SQL that may run: one checked expression over its columns (a ConfigError
    naming the pool, the predicate and why otherwise)."""
    if not pool.where:
        pool.where = checked_predicate(pool.spec.predicate, pool_columns(pool), f"{pool.prefix}.predicate")
    return pool.where


def pools_connection(pools: list[PoolFiles]):
    """A DuckDB connection that can read these pools' files and nothing else (assay/curation/duckdb_locked.py)."""
    from assay.curation.duckdb_locked import locked_connection

    return locked_connection([f for pool in pools for f in pool.files])


def pool_relation_sql(files: list[str], row_numbers: bool = False) -> str:
    """All of a pool's files as one relation (columns missing from some files read as NULL)."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    extra = ", file_row_number = true" if row_numbers else ""
    return f"read_parquet([{listed}], union_by_name = true, filename = true{extra})"


def pool_query(pool: PoolFiles, columns: str = "id, text", extra_where: str = "", row_numbers: bool = False) -> str:
    """The pool's non-empty documents matching its (checked) predicate."""
    where = f"({pool_where(pool)}) AND text IS NOT NULL AND length(text) > 0"
    if extra_where:
        where += f" AND {extra_where}"
    return f"SELECT {columns} FROM {pool_relation_sql(pool.files, row_numbers)} WHERE {where}"


def count_pool(con, pool: PoolFiles) -> PoolCount:
    """Documents matching the predicate; a predicate refused or one DuckDB cannot run (a type error) is a
    ConfigError naming the pool. `con`: `pools_connection`."""
    where = pool_where(pool)
    rel = pool_relation_sql(pool.files)
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE text IS NULL OR length(text) = 0), "
            f"coalesce(sum(length(text)), 0), count(DISTINCT id) FROM {rel} WHERE ({where})"
        ).fetchall()[0]
    except Exception as exc:  # duckdb raises Binder/Conversion errors
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        except Exception as read_exc:
            raise ConfigError(f"{pool.prefix}.source: cannot read the Parquet shards in {pool.spec.source!r}: "
                              f"{str(read_exc).splitlines()[0]}; re-run `assay run` to rewrite them") from None
        raise ConfigError(f"{pool.prefix}.predicate: DuckDB cannot run {pool.spec.predicate!r}: "
                          f"{str(exc).splitlines()[0]}; columns available: {columns}") from None
    total, empty, chars, distinct = (int(v) for v in row)
    if distinct != total:
        raise ConfigError(f"{pool.prefix}: {total - distinct} duplicate document ids in {pool.spec.source!r}; "
                          "ids must be unique within a pool (re-run `assay run`, which assigns unique ids)")
    return PoolCount(documents=total - empty, empty=empty, chars=chars)


def is_heldout(text: str, fraction: float) -> bool:
    """Held out by content: a fixed fraction of texts (near-identical copies fall on the same side)."""
    if fraction <= 0:
        return False
    return int(content_hash(text)[:8], 16) / 2**32 < fraction


def tokenizer_sample(con, pools: list[PoolFiles], recipe: Recipe) -> list[str]:
    """Texts to train the tokenizer on: up to `tokenizer.sample_docs` per pool, seeded, never held-out ones."""
    texts: list[str] = []
    limit = 2 * recipe.tokenizer.sample_docs + 16  # room for the held-out ones filtered below
    for pool in pools:
        sql = (pool_query(pool) + f" ORDER BY md5(concat('{int(recipe.seed)}/', id)), id LIMIT {limit}")
        picked = [t for _, t in con.execute(sql).fetchall() if not is_heldout(t, recipe.heldout_fraction)]
        texts.extend(picked[: recipe.tokenizer.sample_docs])
    return texts
