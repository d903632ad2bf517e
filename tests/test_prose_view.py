"""The prose view: extraction keeps code blocks and tables in the text but leaves them out of the prose that
language ID and the assay filter profile judge; the text written to shards is never cut by that choice."""
import pytest

from assay.curation.document import MIN_PROSE_CHARS, Document, Rejection
from assay.curation.extract import ExtractConfig, ExtractText, without_formula_lines, xml_to_text_and_prose
from assay.curation.filters import DatatroveFilter, FilterConfig, build_filter_stages, filter_stage

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


MATH_PAGE = """<html><head><title>The Uniform Distribution</title></head><body><main>
<h1>The Uniform Distribution</h1>
<p>The uniform distribution is a continuous probability distribution concerned with events that are equally
likely to occur. Let X be the length, in seconds, of a baby's smile, uniform between zero and 23 seconds.</p>
<p>P(x&lt;k)=0.90</p><p>(base)(height)=0.90</p><p>(k−0)( 1 23 )=0.90</p><p>k=( 23 )( 0.90 )=20.7</p>
<p>μ = 0 + 23 2 = 11.50 and σ = (23 − 0) 2 12 = 6.64</p>
<p>Ninety percent of the smiling times fall below the 90th percentile, so the percentile is 20.7 seconds.</p>
<p>The area of the rectangle is the probability, which is why the density is one over the width.</p>
<p><math><mi>f</mi><mo>(</mo><mi>x</mi><mo>)</mo><mo>=</mo><mn>1</mn><mo>/</mo><mn>23</mn></math></p>
</main></body></html>"""


@pytest.mark.parametrize("engine", ["resiliparse", "trafilatura"])
def test_formulas_written_as_text_stay_in_the_text_and_out_of_the_prose(engine):
    """Algebra lines are to the prose view what code blocks are: Gopher's letters rule no longer drops the page."""
    doc = ExtractText(ExtractConfig(engine=engine)).process(Document("m", MATH_PAGE, mime="text/html"))
    assert isinstance(doc, Document)
    assert "P(x<k)=0.90" in doc.text and "k=( 23 )( 0.90 )=20.7" in doc.text
    assert "P(x<k)" not in doc.prose and "11.50" not in doc.prose
    assert "Ninety percent of the smiling times" in doc.prose and "continuous probability" in doc.prose
    gopher = filter_stage("gopher_quality", {"max_non_alpha_words_ratio": 0.7}, view="prose")
    assert isinstance(gopher.process(doc), Document)


def test_formula_lines_need_an_operation_and_few_words():
    text = "\n".join(["Let X = length, in seconds, of a smile.", "=====", "a + b = c",
                      "The probability is 0.5 when x = 3 and the coin is fair.", "f(x) = x^2 + 1"])
    assert without_formula_lines(text).split("\n") == [
        "Let X = length, in seconds, of a smile.", "=====", "The probability is 0.5 when x = 3 and the coin is fair."]
    assert without_formula_lines("no formula here\njust words") == "no formula here\njust words"
