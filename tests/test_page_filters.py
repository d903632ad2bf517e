"""assay's own page filters: link-heavy pages and release notes, judged on what extraction read from the HTML."""
import pytest

from assay.curation.document import Document, Rejection
from assay.curation.extract import ExtractConfig, ExtractText, page_signals
from assay.curation.filters import FilterConfig, build_filter_stages
from assay.curation.page_filters import LinkDensityFilter, ReleaseNotesFilter, release_title

PROSE = ("<p>A context manager sets up a resource when the block starts and releases it when the block ends, "
         "even when the block raises an exception, which is why files and locks are best used with it.</p>")


def _page(body: str, title: str = "Context managers") -> str:
    return f"<html><head><title>{title} — Example 1.2 documentation</title></head><body>{body}</body></html>"


def _menu(n: int) -> str:
    return "<ul>" + "".join(f'<li><a href="p{i}.html">Chapter {i}: a section of the manual</a></li>'
                            for i in range(n)) + "</ul>"


@pytest.mark.parametrize("engine", ["resiliparse", "trafilatura"])
def test_extraction_records_link_share_title_and_heading(engine):
    article = _page(f"<h1>Context managers</h1>{PROSE * 4}{_menu(2)}")
    landing = _page(f"<h1>Welcome</h1>{PROSE}{_menu(40)}", title="Welcome")
    stage = ExtractText(ExtractConfig(engine=engine))
    doc = stage.process(Document("a", article, mime="text/html"))
    assert isinstance(doc, Document)
    assert doc.meta["title"] == "Context managers — Example 1.2 documentation"
    assert doc.meta["heading"] == "Context managers"
    assert 0.0 <= doc.meta["link_share"] < 0.2  # the two-link menu is not main content
    assert page_signals(landing)["page_link_share"] > 0.8
    assert {"link_share", "page_link_share", "title", "heading"} <= set(stage.columns)


def test_link_heavy_pages_are_dropped_with_their_share_and_others_pass():
    stage = LinkDensityFilter(max_link_share=0.4, min_words=300)
    out = stage.process(Document("nav", "Welcome", meta={"link_share": 0.83, "page_link_share": 0.9}))
    assert isinstance(out, Rejection) and out.reason == "link_heavy" and "83% of the main content" in out.detail
    # an intro paragraph inside a big menu: the main content is not links, the page is, and the text is short
    intro = Document("landing", "Welcome to the project. " * 10, meta={"link_share": 0.0, "page_link_share": 0.7})
    out = stage.process(intro)
    assert isinstance(out, Rejection) and "70% of the page" in out.detail and "40 words" in out.detail
    # the same menu around a real article of 300+ words: kept
    article = Document("a", "The reader learns why. " * 80, meta={"link_share": 0.02, "page_link_share": 0.7})
    assert isinstance(stage.process(article), Document)
    assert isinstance(stage.process(Document("edu", "text", meta={"link_share": 0.12, "page_link_share": 0.2})),
                      Document)
    assert isinstance(stage.process(Document("txt", "plain text: no HTML, no share", meta={})), Document)
    with pytest.raises(ValueError, match="max_link_share"):
        LinkDensityFilter(max_link_share=0)
    with pytest.raises(ValueError, match="min_words"):
        LinkDensityFilter(min_words=-1)


@pytest.mark.parametrize("title", ["Changes in Varnish 7.1", "Upgrading to Varnish 6.0", "Varnish 5.0 Release Note",
                                   "What's New In Python 3.11", "Django 3.0.13 release notes", "varnish: changelog",
                                   "Version 0.16.1 (May 11, 2015)", "E.1. Release 15.2", "pytest-3.8.0 announced",
                                   "Overview of new features in Apache HTTP Server 2.4", "NEWS",
                                   "News in GNU Make 4.4"])
def test_release_note_titles_are_recognised(title):
    assert release_title(title)


@pytest.mark.parametrize("title", ["19.6. Upgrading a PostgreSQL Cluster", "Context managers",
                                   "4.2. Using the Python interpreter", "Release management with git",
                                   "Python 3.11 tutorial", "Changes to the locale model explained",
                                   "BREAKING NEWS: storm closes schools", "Local News | Springfield Herald",
                                   "Good news for bees: how pollinators recover", "NEWS: council votes", "Sky News"])
def test_teaching_titles_are_not_release_notes(title):
    assert not release_title(title)


def test_release_notes_filter_reads_heading_then_title_without_site_suffix():
    stage = ReleaseNotesFilter()
    by_heading = stage.process(Document("r", "x", meta={"heading": "Changes in Varnish 7.1", "title": "Varnish"}))
    assert isinstance(by_heading, Rejection) and by_heading.reason == "release_notes" and "heading" in by_heading.detail
    by_title = stage.process(Document("d", "x", meta={"heading": "Django documentation",
                                                      "title": "Django 3.0.13 release notes | Django documentation"}))
    assert isinstance(by_title, Rejection) and "title" in by_title.detail
    # the site suffix's version number ("Varnish version 7.1.1 documentation") must not count
    kept = stage.process(Document("k", "x", meta={"heading": "Increasing your hitrate",
                                                  "title": "Increasing your hitrate — Varnish version 7.1.1 "
                                                            "documentation"}))
    assert isinstance(kept, Document)


def test_the_default_profile_runs_page_filters_first_and_fineweb_has_none():
    names = [s.name for s in build_filter_stages(FilterConfig())]
    assert names[:3] == ["stats", "release_notes", "link_density"]
    assert not {"release_notes",
                "link_density"} & {s.name for s in build_filter_stages(FilterConfig(profile="fineweb"))}


def _site(main: str, menu_links: int) -> str:
    """A news or documentation page: a long site menu, footer links, and the article in <main>."""
    menu = "<nav>" + _menu(menu_links) + "</nav>"
    footer = "<footer>" + "".join(f'<a href="f{i}">Footer link {i}</a> ' for i in range(30)) + "</footer>"
    return _page(f"{menu}<main><article><h1>Context managers</h1>{main}</article></main>{footer}")


@pytest.mark.parametrize("engine", ["resiliparse", "trafilatura"])
def test_link_share_is_measured_on_the_main_content_not_the_site_menu(engine):
    """A real article inside a large site menu is not link-heavy; an index page (its content is links) still is."""
    article = _site(PROSE * 12, menu_links=80)
    index = _site("<p>All chapters of the manual.</p>" + _menu(30), menu_links=10)
    stage = ExtractText(ExtractConfig(engine=engine))
    link_density = LinkDensityFilter(0.4, min_words=300)
    doc = stage.process(Document("a", article, mime="text/html"))
    assert isinstance(doc, Document) and doc.meta["link_share"] < 0.1 and doc.meta["page_link_share"] > 0.5
    assert isinstance(link_density.process(doc), Document)
    nav = stage.process(Document("n", index, mime="text/html"))
    assert isinstance(nav, Document) and nav.meta["page_link_share"] > 0.6
    assert isinstance(link_density.process(nav), Rejection)
