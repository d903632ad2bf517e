"""assay's own page filters: link-heavy pages and release notes, judged on what extraction read from the HTML."""
import pytest

from curation.document import Document, Rejection
from curation.extract import ExtractConfig, ExtractText, page_signals
from curation.filters import FilterConfig, build_filter_stages
from curation.page_filters import LinkDensityFilter, ReleaseNotesFilter, release_title

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
    assert 0.0 < doc.meta["link_share"] < 0.2
    assert page_signals(landing)["link_share"] > 0.8
    assert {"link_share", "title", "heading"} <= set(stage.columns)


def test_link_heavy_pages_are_dropped_with_their_share_and_others_pass():
    stage = LinkDensityFilter(max_link_share=0.4)
    out = stage.process(Document("nav", "Welcome", meta={"link_share": 0.83}))
    assert isinstance(out, Rejection) and out.reason == "link_heavy" and "83%" in out.detail
    assert isinstance(stage.process(Document("edu", "text", meta={"link_share": 0.12})), Document)
    assert isinstance(stage.process(Document("txt", "plain text: no HTML, no share", meta={})), Document)
    with pytest.raises(ValueError, match="max_link_share"):
        LinkDensityFilter(max_link_share=0)


@pytest.mark.parametrize("title", ["Changes in Varnish 7.1", "Upgrading to Varnish 6.0", "Varnish 5.0 Release Note",
                                   "What's New In Python 3.11", "Django 3.0.13 release notes", "varnish: changelog",
                                   "Version 0.16.1 (May 11, 2015)", "E.1. Release 15.2", "pytest-3.8.0 announced",
                                   "Overview of new features in Apache HTTP Server 2.4", "NEWS"])
def test_release_note_titles_are_recognised(title):
    assert release_title(title)


@pytest.mark.parametrize("title", ["19.6. Upgrading a PostgreSQL Cluster", "Context managers",
                                   "4.2. Using the Python interpreter", "Release management with git",
                                   "Python 3.11 tutorial", "Changes to the locale model explained"])
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
                                                  "title": "Increasing your hitrate — Varnish version 7.1.1 documentation"}))
    assert isinstance(kept, Document)


def test_the_default_profile_runs_page_filters_first_and_fineweb_has_none():
    names = [s.name for s in build_filter_stages(FilterConfig())]
    assert names[:3] == ["stats", "release_notes", "link_density"]
    assert not {"release_notes", "link_density"} & {s.name for s in build_filter_stages(FilterConfig(profile="fineweb"))}
