"""The prose view: extraction keeps code blocks and tables in the text but leaves them out of the prose that
language ID and the assay filter profile judge; the text written to shards is never cut by that choice."""
import pytest

from curation.document import MIN_PROSE_CHARS, Document, Rejection
from curation.extract import ExtractConfig, ExtractText, xml_to_text_and_prose
from curation.filters import DatatroveFilter, FilterConfig, build_filter_stages

SENTENCE = "The configuration file tells the server which modules to load and where each log is written. "
CODE = "\n".join(f"server.set_option('key_{i}', value={i}); server.reload()  # {i}" for i in range(40))


PARAGRAPHS = [
    "A reverse proxy accepts requests from clients and forwards each one to a backend chosen by its rules.",
    "Before changing anything, copy the current configuration so that a mistake can be undone quickly.",
    "Every directive belongs to a context; putting it in the wrong block is reported when the file is loaded.",
    "Timeouts protect the workers: a client that stops sending data is disconnected after the limit passes.",
    "Logging can be tuned per site, which helps when one busy application would otherwise flood the disk.",
    "Certificates are read once at start-up, so renewing them requires a reload rather than a full restart.",
    "Caching responses close to the client saves bandwidth, yet stale entries must expire on a schedule.",
    "When several rules match one address, the most specific prefix wins and the order in the file is ignored.",
    "Health checks mark a backend as down after repeated failures and bring it back once it answers again.",
    "Rate limits are counted per key, usually the client address, and excess requests receive status 429.",
]


def _page() -> str:
    prose = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return (f"<html><head><title>Configuring the server</title></head><body><main><h1>Configuring the server</h1>"
            f"{prose}<pre><code>{CODE}</code></pre><table><tr><td>option</td><td>default</td></tr>"
            f"<tr><td>timeout_s</td><td>20</td></tr></table><p>{SENTENCE}</p></main></body></html>")


@pytest.mark.parametrize("engine", ["resiliparse", "trafilatura"])
def test_extraction_keeps_code_in_the_text_and_out_of_the_prose(engine):
    out = ExtractText(ExtractConfig(engine=engine)).process(Document("p", _page(), mime="text/html"))
    assert isinstance(out, Document)
    assert "server.set_option('key_7'" in out.text
    assert out.prose is not None and "set_option" not in out.prose and "timeout_s" not in out.prose
    assert "which modules to load" in out.prose
    assert 0 < out.meta["prose_share"] < 1
    assert "prose" not in out.to_row()  # never written to shards


def test_view_falls_back_to_the_text_when_there_is_too_little_prose():
    doc = Document("d", "x" * 1000, prose="short")
    assert doc.view("prose") == doc.text and doc.view("text") == doc.text
    long = Document("d", "x" * 1000, prose="y" * MIN_PROSE_CHARS)
    assert long.view("prose") == "y" * MIN_PROSE_CHARS
    assert long.with_meta(a=1).prose == long.prose and long.without_prose().prose is None
    with pytest.raises(ValueError, match="unknown text view"):
        doc.view("html")


def test_a_code_heavy_page_passes_the_assay_profile_and_fails_fineweb_on_the_same_text():
    doc = ExtractText(ExtractConfig()).process(Document("p", _page(), mime="text/html")).with_meta(language="en")
    assay = [s for s in build_filter_stages(FilterConfig()) if isinstance(s, DatatroveFilter)]
    fineweb = [s for s in build_filter_stages(FilterConfig(profile="fineweb")) if isinstance(s, DatatroveFilter)]
    assert all(isinstance(s.process(doc), Document) for s in assay)
    verdicts = [s.process(doc) for s in fineweb]
    assert any(isinstance(v, Rejection) for v in verdicts), "the code block should trip a web-text rule"


def test_lines_a_filter_removes_from_the_prose_are_removed_from_the_text():
    prose = "\n".join([SENTENCE] * 4 + ["Please enable javascript to view this page."] + [SENTENCE] * 3)
    text = prose + "\n" + CODE
    doc = Document("d", text, meta={"language": "en"}, prose=prose)
    out = DatatroveFilter("c4_quality", {"filter_no_terminal_punct": False}, view="prose").process(doc)
    assert isinstance(out, Document)
    assert "javascript" not in out.text.lower() and CODE in out.text
    assert "javascript" not in out.prose.lower()


def test_unknown_profile_or_view_is_a_clear_error():
    with pytest.raises(ValueError, match="filters.profile"):
        FilterConfig(profile="c4")
    with pytest.raises(ValueError, match="filters.view"):
        FilterConfig(view="html")


def test_xml_prose_leaves_out_code_and_tables():
    xml = ("<doc><main><head>Title</head><p>Some words here.</p><code>x = 1</code><list><item>one</item></list>"
           "<table><row><cell>a</cell></row></table></main></doc>")
    text, prose = xml_to_text_and_prose(xml)
    assert "x = 1" in text and "a" in text.split("\n")[-1]
    assert prose.split("\n") == ["Title", "Some words here.", "- one"]
