"""`assay sql` stays free-form SQL over an output, but shows documents as the characters they are (no rich
markup, no terminal escapes) and reads the output's shards only."""
import pytest
from typer.testing import CliRunner

from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic
from assay.groundwork.terminal import printable

HOSTILE = "quoted [/quote] and [bold]x[/bold] \x1b[2J\x1b]0;pwned\x07 red \x1b[31mtext\u202e"


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    root = tmp_path_factory.mktemp("sql")
    rows = [{"id": "a", "text": HOSTILE, "source": "t", "url": "", "domain": "", "date": ""},
            {"id": "b", "text": "plain", "source": "t", "url": "", "domain": "", "date": ""}]
    write_table_atomic(rows_to_table(rows, doc_schema({})), str(root / "out/docs/part-00000-of-00001.parquet"))
    (root / "secret.txt").write_text("s3cret\n")
    return root


def _sql(output, query, *extra):
    from assay.pipelines.cli import app

    return CliRunner().invoke(app, ["sql", query, "-o", str(output / "out"), *extra], terminal_width=300)


def test_a_document_with_markup_and_escapes_is_shown_as_text(output):
    result = _sql(output, "SELECT id, text AS \"[red]col\" FROM docs ORDER BY id")
    assert result.exit_code == 0, result.output
    assert "[/quote]" in result.output and "[bold]x[/bold]" in result.output and "[red]col" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert printable("a\x1bb\tc\nd\u2066") == "a\ufffdb\tc\nd\ufffd"


def test_the_query_reaches_no_other_file(output):
    result = _sql(output, f"SELECT * FROM read_text('{output}/secret.txt')")
    assert result.exit_code == 2 and "SQL error" in result.output and "s3cret" not in result.output
    result = _sql(output, f"COPY (SELECT 1) TO '{output}/pwned.csv'")
    assert result.exit_code == 2 and not (output / "pwned.csv").exists()
