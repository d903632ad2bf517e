"""A received recipe or plan runs no code: a pool predicate (or an eval set's) is one checked expression over the
pool's columns, refused otherwise by name, in dry runs too; and DuckDB itself can read the pool's files only."""
import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from assay.curation.duckdb_locked import locked_connection
from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.groundwork.config import ConfigError
from assay.pipelines.mix import count_pool, load_recipe, pool_query, pools_connection, resolve_pools, run_mix

ROWS = [{"id": f"d{i}", "text": f"document number {i} " * (1 + i), "source": "t", "url": "", "domain": "", "date": "",
         "language": "en" if i % 2 else "de", "n_words": 3 * (1 + i)} for i in range(6)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    schema = doc_schema({"language": pa.string(), "n_words": pa.int64()})
    write_table_atomic(rows_to_table(ROWS, schema), str(root / "web/docs/part-00000-of-00001.parquet"))
    (root / "secret.txt").write_text("s3cret\n")
    return root


def _recipe(root, predicate: str) -> str:
    path = root / f"r{abs(hash(predicate))}.toml"
    escaped = predicate.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(f'[pools.web]\nsource = "{root}/web"\npredicate = "{escaped}"\n'
                    '[[phases]]\nname = "p"\ntokens = 10\nweights = { web = 1 }\n')
    return str(path)


ATTACKS = {
    "multi-statement": "true; COPY (SELECT 'x') TO '{root}/pwned.csv'",
    "multi-statement .pth": "true; COPY (SELECT 'import os') TO '{root}/evil.pth' (HEADER false)",
    "copy": "COPY (SELECT 1) TO '{root}/pwned.csv'",
    "attach": "ATTACH '{root}/pwned.db' AS x",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "read_text": "length(read_text('{root}/secret.txt')) > 0",
    "read_csv": "read_csv('{root}/secret.txt') IS NOT NULL",
    "glob": "glob('{root}/*') IS NOT NULL",
    "subquery": "(SELECT count(*) FROM read_text('{root}/secret.txt')) > 0",
    "unknown column": "edu_score >= 3",
    "unknown function": "getenv('HOME') <> ''",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attack_is_refused_naming_the_pool_and_the_predicate(pool, attack):
    predicate = ATTACKS[attack].format(root=pool)
    with pytest.raises(ConfigError) as info:
        resolve_pools(load_recipe(_recipe(pool, predicate)), warn=lambda _: None)
    message = str(info.value)
    assert "pools.web.predicate: refused" in message and repr(predicate) in message
    assert "columns available" in message and "n_words" in message  # what to write instead
    assert not [p.name for p in pool.iterdir() if p.name.startswith(("pwned", "evil"))]


def test_a_legitimate_predicate_still_selects_its_documents(pool):
    recipe = load_recipe(_recipe(pool, "language = 'en' AND n_words BETWEEN 4 AND 15 AND lower(text) LIKE 'doc%' "
                                       "AND NOT starts_with(id, 'x') AND coalesce(abs(n_words), 0) > 0"))
    (web,), _ = resolve_pools(recipe, warn=lambda _: None)
    with pools_connection([web]) as con:
        assert count_pool(con, web).documents == 2  # d1 (6 words) and d3 (12 words)
        assert sorted(i for i, _ in con.execute(pool_query(web)).fetchall()) == ["d1", "d3"]


def test_dry_run_refuses_too(pool):
    from assay.pipelines.ablate.dryrun import check_pools
    from assay.pipelines.cli import app

    path = _recipe(pool, ATTACKS["read_text"].format(root=pool))
    with pytest.raises(ConfigError, match=r"pools\.web\.predicate: refused"):
        run_mix(load_recipe(path), str(pool / "mix"), dry_run=True, progress=False)
    result = CliRunner().invoke(app, ["mix", path, "--dry-run"], terminal_width=300)
    assert result.exit_code == 2 and "pools.web.predicate: refused" in result.output
    assert check_pools(load_recipe(path)).startswith("pools.web.predicate: refused")  # `assay ablate --dry-run`


def test_an_ablation_eval_set_predicate_is_checked(pool, tmp_path):
    from assay.pipelines.ablate.dryrun import eval_info_now
    from assay.pipelines.ablate.plan import load_plan

    recipe = _recipe(pool, "true")
    plan = tmp_path / "plan.toml"
    plan.write_text(f'seeds = [0]\n[recipes.web]\npath = "{recipe}"\n[[sizes]]\nname = "a"\npreset = "mini-1m"\n'
                    f'tokens = 10000\n[eval.sets.web]\nsource = "{pool}/web"\n'
                    f'predicate = "length(read_text(\'{pool}/secret.txt\')) > 0"\n')
    info, status = eval_info_now(load_plan(str(plan)))
    assert info is None and status.startswith("eval.sets.web.predicate: refused")


def test_the_locked_connection_reads_its_files_and_nothing_else(pool):
    shard = str(pool / "web/docs/part-00000-of-00001.parquet")
    with locked_connection([shard]) as con:
        assert con.execute(f"SELECT count(*) FROM read_parquet('{shard}')").fetchone()[0] == len(ROWS)
        for sql in (f"SELECT * FROM read_text('{pool}/secret.txt')", f"SELECT * FROM glob('{pool}/*')",
                    f"COPY (SELECT 1) TO '{pool}/pwned.csv'", f"ATTACH '{pool}/pwned.db' AS x", "LOAD httpfs",
                    "SET enable_external_access = true", "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    assert not [p.name for p in pool.iterdir() if p.name.startswith("pwned")]
