"""Pools on disk: which Parquet files a pool reads, its DuckDB query, its counts, and the held-out rule."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from curation.document import content_hash
from curation.shards import document_shards
from groundwork.config import ConfigError
from pipelines.mix.recipe import PoolSpec, Recipe

log = logging.getLogger(__name__)


@dataclass
class PoolFiles:
    name: str
    spec: PoolSpec
    files: list[str]


@dataclass
class PoolCount:
    """What DuckDB sees in a pool before tokenizing: matching documents, and those with empty text."""

    documents: int
    empty: int
    chars: int


def pool_files(name: str, spec: PoolSpec) -> list[str]:
    """Parquet shards of a pool (curation.shards.document_shards of its source); none when there are none."""
    try:
        return document_shards(spec.source)
    except FileNotFoundError:
        return []


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
            found.append(PoolFiles(name, spec, files))
            continue
        reason = f"no Parquet shards in {spec.source!r}"
        if spec.optional:
            warn(f"pool {name!r} skipped (optional): {reason}")
            skipped[name] = reason
        else:
            raise ConfigError(f"pools.{name}.source: {reason}; run `assay run --output {spec.source}` first, "
                              f"fix the path, or set pools.{name}.optional = true")
    return found, skipped


def pool_relation_sql(files: list[str], row_numbers: bool = False) -> str:
    """All of a pool's files as one relation (columns missing from some files read as NULL)."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    extra = ", file_row_number = true" if row_numbers else ""
    return f"read_parquet([{listed}], union_by_name = true, filename = true{extra})"


def pool_query(pool: PoolFiles, columns: str = "id, text", extra_where: str = "", row_numbers: bool = False) -> str:
    """The pool's non-empty documents matching its predicate."""
    where = f"({pool.spec.predicate}) AND text IS NOT NULL AND length(text) > 0"
    if extra_where:
        where += f" AND {extra_where}"
    return f"SELECT {columns} FROM {pool_relation_sql(pool.files, row_numbers)} WHERE {where}"


def count_pool(con, pool: PoolFiles) -> PoolCount:
    """Documents matching the predicate; a predicate DuckDB rejects is a ConfigError naming the pool."""
    rel = pool_relation_sql(pool.files)
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE text IS NULL OR length(text) = 0), "
            f"coalesce(sum(length(text)), 0), count(DISTINCT id) FROM {rel} WHERE ({pool.spec.predicate})"
        ).fetchall()[0]
    except Exception as exc:  # duckdb raises Binder/Parser errors
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        except Exception as read_exc:
            raise ConfigError(f"pools.{pool.name}.source: cannot read the Parquet shards in {pool.spec.source!r}: "
                              f"{str(read_exc).splitlines()[0]}; re-run `assay run` to rewrite them") from None
        raise ConfigError(f"pools.{pool.name}.predicate: DuckDB cannot run {pool.spec.predicate!r}: "
                          f"{str(exc).splitlines()[0]}; columns available: {columns}") from None
    total, empty, chars, distinct = (int(v) for v in row)
    if distinct != total:
        raise ConfigError(f"pools.{pool.name}: {total - distinct} duplicate document ids in {pool.spec.source!r}; "
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
