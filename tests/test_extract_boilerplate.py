"""The default extraction's boilerplate pass and its trafilatura second opinion, on small hand-written pages.

The measured effect on public extraction benchmarks is in docs/quality.md (benchmarks/extraction_quality.py);
these pages pin down each rule: teaser sections, share/tag/login lines and link lists go, the article and a
documentation page's code, tables, lists and definition lists stay, and a page whose main text resiliparse
misses comes out of trafilatura instead of empty.
"""
from assay.curation.document import Document, Rejection
from assay.curation.extract import ExtractText
from assay.curation.extract_boilerplate import boilerplate_lines, link_chars, mark_links, unmark

SENTENCE = "The river rose through the night and by morning the lower town was under water, the mayor said. "
STORY = [SENTENCE * 3, "Volunteers filled sandbags at the school while the fire brigade pumped out cellars. " * 3,
         "Engineers will inspect the old stone bridge on Monday before it opens to traffic again. " * 3]


def extract(html: str):
    return ExtractText().process(Document("p", html, mime="text/html"))


def article(extra_inside: str = "", extra_after: str = "") -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in STORY)
    return (f"<html><head><title>Flood</title></head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
            f"<article><h1>Flood reaches the lower town</h1>{paragraphs}{extra_inside}</article>{extra_after}"
            f"<footer>Copyright 2024 The Town Paper. All rights reserved.</footer></body></html>")


def test_link_text_is_marked_and_measured():
    marked = mark_links("<p>Read <a href='/x'>the <b>report</b></a> or <A HREF=y>this</A>.</p><abbr>ok</abbr>")
    assert marked.count("\x01") == 2 and marked.count("\x02") == 2 and "<abbr>ok" in marked
    assert unmark("a\x01b\x02c") == "abc"
    assert link_chars("Read \x01the report\x02 now") == (16, 9)


def test_teaser_sections_share_rows_tag_lines_and_link_lists_are_dropped():
    teasers = ("<h3>Related stories</h3><ul>" + "".join(f"<li><a href='/s{i}'>Storm {i} hits the coast</a></li>"
                                                       for i in range(5)) + "</ul>")
    furniture = "<p>Share this article</p><p>Tags: flood, weather, town</p><p><a href='/more'>More weather news</a></p>"
    doc = extract(article(extra_inside=furniture + teasers))
    assert isinstance(doc, Document)
    for paragraph in STORY:
        assert paragraph.strip() in doc.text
    for boilerplate in ("Related stories", "Storm 3", "Share this", "Tags:", "More weather news", "Copyright"):
        assert boilerplate not in doc.text, boilerplate
    assert doc.meta["extractor"].startswith("resiliparse ")
    assert doc.meta["heading"] == "Flood reaches the lower town"


def test_a_paragraph_with_links_and_a_long_plain_paragraph_after_a_teaser_heading_stay():
    lines = ["More from the town desk:", "\x01Bridge closed\x02", "A long paragraph that is clearly the article "
             "again and not a teaser, with many words in it, more than twelve of them.",
             "Residents \x01said\x02 the water came faster than in any flood they remember."]
    assert boilerplate_lines(lines) == [True, True, False, False]


def test_documentation_code_tables_lists_and_definitions_stay():
    page = ("<html><body><main><h1>frob(x)</h1><p>frob turns a widget inside out and returns it.</p>"
            "<pre><code>import frob\nw = frob.frob(widget)\n</code></pre>"
            "<table><tr><th>Option</th><th>Meaning</th></tr><tr><td>depth</td><td>how far to turn</td></tr></table>"
            # numbered: resiliparse's main-content mode drops <ul> lists whatever they hold (docs/quality.md)
            "<ol><li>Works on widgets.</li><li>Raises ValueError on gadgets.</li></ol>"
            "<dl><dt>widget</dt><dd>a thing with an inside and an outside</dd></dl>"
            "<p>See <a href='/frob/other'>the other function</a> for the reverse operation.</p></main></body></html>")
    doc = extract(page)
    assert isinstance(doc, Document)
    for kept in ("w = frob.frob(widget)", "depth", "how far to turn", "Raises ValueError on gadgets.",
                 "a thing with an inside and an outside", "See the other function for the reverse operation."):
        assert kept in doc.text, kept
    assert "w = frob.frob(widget)" not in doc.prose and "frob turns a widget" in doc.prose


def test_a_page_resiliparse_finds_no_main_text_in_comes_out_of_trafilatura_not_empty():
    # the article sits in a container resiliparse's main-content heuristics take for a sidebar
    paragraphs = "".join(f"<p>{p}</p>" for p in STORY)
    doc = extract(f"<html><body><div class='sidebar'>{paragraphs}</div></body></html>")
    assert isinstance(doc, Document), doc
    assert STORY[0].strip() in doc.text and doc.meta["extractor"].startswith("trafilatura ")


def test_a_page_without_any_text_is_still_rejected_as_empty():
    out = extract("<html><body><div class='sidebar'><img src='x.png'></div></body></html>")
    assert isinstance(out, Rejection) and out.reason == "empty"


def test_a_page_whose_trafilatura_xml_does_not_parse_is_judged_not_a_crash():
    # a broken table attribute (<td width"50%">, seen on a real documentation page) makes trafilatura 1.11 write
    # XML that lxml refuses: trafilatura then has no text for the page (its second opinion is absent), and the
    # stage goes on instead of failing the run
    from assay.curation.extract import ExtractConfig

    story = "".join(f"<p>{p}</p>" for p in STORY)
    html = ('<html><body><table><tr valign="top"><td width="1"></td><td width="430"><table><tr>'
            f'<td rowspan="2" width"50%">{story}</td></tr></table></td></tr></table></body></html>')
    page = Document("p", html, mime="text/html")
    assert isinstance(ExtractText(ExtractConfig(engine="trafilatura")).process(page), Rejection)
    doc = ExtractText().process(page)
    assert isinstance(doc, Document) and "sandbags" in doc.text
