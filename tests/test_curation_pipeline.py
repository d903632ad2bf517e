"""End to end on the embedded sample: a real Beam run with real extraction, fastText, datatrove and DuckDB."""
import json
import os

import duckdb
import pytest
from typer.testing import CliRunner

from assay.pipelines.cli import app
from assay.pipelines.curate.config import SAMPLE_DIR, CurateConfig
from assay.pipelines.curate.job import run_curation

MANIFEST = SAMPLE_DIR / "manifest.jsonl"
#: the stages that may drop a sample page: every stage of the default run (from the stage registry, through the
#: job's own steps) but those that only annotate
QUALITY_STAGES = {name for step in CurateConfig().steps() for name in step.names} - {"stats", "pii"}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "out"
    cfg = CurateConfig()
    cfg.runner.workers = 2
    result = run_curation(cfg, output=str(out), show_progress=False)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW manifest AS SELECT * FROM read_json_auto('{MANIFEST}')")
    con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet('{out}/docs/*.parquet')")
    con.execute(f"CREATE VIEW rejected AS SELECT * FROM read_parquet('{out}/rejected/*.parquet')")
    return result, con


def scalar(con, sql):
    return con.execute(sql).fetchall()[0][0]


def test_outputs_exist_and_every_record_is_accounted_for(sample_run):
    result, con = sample_run
    out = result.output
    assert os.listdir(os.path.join(out, "docs")) and os.listdir(os.path.join(out, "rejected"))
    assert not os.path.exists(os.path.join(out, ".staging"))
    with open(os.path.join(out, "run.json")) as fh:
        assert json.load(fh)["config"]["dedup"]["minhash"]["bands"] == 14
    records = scalar(con, "SELECT count(*) FROM manifest")
    kept, rejected = scalar(con, "SELECT count(*) FROM docs"), scalar(con, "SELECT count(*) FROM rejected")
    totals = result.funnel["totals"]
    assert kept + rejected == records == totals["read"]
    assert (kept, rejected) == (totals["kept"], totals["rejected"])
    assert 0 < kept < records
    # every kept doc and every drop is one manifest page, exactly once
    assert scalar(con, "SELECT count(DISTINCT url) FROM (SELECT url FROM docs UNION ALL SELECT url FROM "
                       "rejected)") == records
    assert scalar(con, "SELECT count(*) FROM rejected WHERE reason = 'stage_error'") == 0


def test_funnel_is_consistent_stage_by_stage(sample_run):
    result, _ = sample_run
    stages = result.funnel["stages"]
    assert [s["stage"] for s in stages][:3] == ["read", "extract", "langid"]
    for before, after in zip(stages, stages[1:]):
        assert after["docs_in"] == before["docs_out"], (before["stage"], after["stage"])
    for s in stages:
        assert s["docs_in"] - s["docs_out"] == sum(s["rejected"].values()), s["stage"]
    pngs = [f for f in os.listdir(os.path.join(result.output, "stats")) if f.endswith(".png")]
    assert "hist_language_score.png" in pngs and "hist_n_words.png" in pngs


def test_signals_are_columns(sample_run):
    _, con = sample_run
    columns = {row[0] for row in con.execute("DESCRIBE docs").fetchall()}
    for col in ("language", "language_score", "n_words", "html_chars", "content_hash", "minhash_cluster",
                "pii_emails", "line_duplicates", "domain"):
        assert col in columns
    assert scalar(con, "SELECT min(language_score) FROM docs") >= 0.65
    assert scalar(con, "SELECT count(*) FROM docs WHERE language <> 'en'") == 0


def test_near_duplicates_collapse_to_one(sample_run):
    _, con = sample_run
    pairs = con.execute("SELECT url, near_duplicate_of FROM manifest WHERE near_duplicate_of IS NOT NULL").fetchall()
    assert len(pairs) >= 10
    kept = {r[0] for r in con.execute("SELECT url FROM docs").fetchall()}
    assert not any(a in kept and b in kept for a, b in pairs)
    dedup_drops = scalar(con, """SELECT count(*) FROM rejected r JOIN manifest m ON r.url = m.url
                                 WHERE r.stage IN ('exact_dedup', 'fuzzy_dedup') AND m.category = 'doc'""")
    assert dedup_drops >= 4, "pairs that pass the filters must be resolved by dedup"
    # the ledger names the representative that was kept
    for (detail, cluster) in con.execute("""SELECT detail, json_extract_string(signals, '$.minhash_cluster')
                                            FROM rejected WHERE stage = 'fuzzy_dedup'""").fetchall():
        assert cluster in detail


def test_spam_and_index_pages_are_dropped_with_reasons(sample_run):
    _, con = sample_run
    for category, min_share in (("spam", 0.9), ("index", 0.8), ("mailing_list", 0.8), ("ephemeral", 0.7)):
        total = scalar(con, f"SELECT count(*) FROM manifest WHERE category = '{category}'")
        dropped = con.execute(f"""SELECT r.stage, r.reason FROM rejected r JOIN manifest m ON r.url = m.url
                                  WHERE m.category = '{category}'""").fetchall()
        assert len(dropped) / total >= min_share, (category, len(dropped), total)
        assert all(stage in QUALITY_STAGES and reason for stage, reason in dropped), dropped
    docs_total = scalar(con, "SELECT count(*) FROM manifest WHERE category = 'doc'")
    docs_kept = scalar(con, "SELECT count(*) FROM docs d JOIN manifest m ON d.url = m.url WHERE m.category = 'doc'")
    spam_kept = scalar(con, "SELECT count(*) FROM docs d JOIN manifest m ON d.url = m.url WHERE m.category = 'spam'")
    spam_total = scalar(con, "SELECT count(*) FROM manifest WHERE category = 'spam'")
    assert docs_kept / docs_total > spam_kept / spam_total, "documentation should survive more often than spam"


def test_non_english_pages_get_their_language(sample_run):
    _, con = sample_run
    rows = con.execute("""SELECT m.language, json_extract_string(r.signals, '$.language'), r.reason
                          FROM manifest m JOIN rejected r ON m.url = r.url
                          WHERE m.category = 'non_english'""").fetchall()
    total = scalar(con, "SELECT count(*) FROM manifest WHERE category = 'non_english'")
    assert len(rows) == total  # the default keeps English only
    assert len({r[0] for r in rows}) >= 4
    assert all(expected == got for expected, got, _ in rows), [r for r in rows if r[0] != r[1]]
    assert sum(reason == "language_not_kept" for *_, reason in rows) >= 0.9 * total


def test_sql_and_stats_commands(sample_run):
    result, con = sample_run
    out = result.output
    runner = CliRunner()
    res = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM docs", "-o", out, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip())["n"] == scalar(con, "SELECT count(*) FROM docs")
    res = runner.invoke(app, ["sql", "SELECT stage, sum(dropped) FROM stats GROUP BY ALL ORDER BY 1", "-o", out, "-f",
                              "csv"])
    assert res.exit_code == 0 and res.output.startswith("stage,")
    target = os.path.join(os.path.dirname(out), "rejected_spam.parquet")
    res = runner.invoke(app, ["sql", "SELECT * FROM rejected WHERE stage = 'langid'", "-o", out, "-f", "parquet",
                              "--to", target])
    assert res.exit_code == 0 and scalar(con, f"SELECT count(*) FROM '{target}'") == scalar(
        con, "SELECT count(*) FROM rejected WHERE stage = 'langid'")
    res = runner.invoke(app, ["sql", "SELECT nope FROM docs", "-o", out])
    assert res.exit_code == 2 and "SQL error" in res.output
    res = runner.invoke(app, ["stats", out, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["totals"] == result.funnel["totals"]
    res = runner.invoke(app, ["stats", "/nonexistent/folder"])
    assert res.exit_code == 2 and "assay run" in res.output
