"""Page-level filters datatrove has no equivalent for: link-heavy pages and release notes.

Both judge what extraction recorded from the HTML (assay/curation/extract.py), not the extracted text:
- **link_density**: a page whose visible text is mostly link text is a menu, an index, a table of contents or
  a landing page; its extracted "main text" is the one intro paragraph around the links, which reads like
  good prose to every text filter and to the edu classifier. It is link-heavy when its main content is mostly
  links, or when the whole page is and its main text is short (a menu around an intro paragraph). A real
  article or documentation page of 300 words or more inside a large site menu or sidebar is not dropped for
  the menu. The limits (0.4, 300 words) follow the rule of every default filter argument, the strictest that
  keeps about 98% of the train split's edu pages; what they drop is measured in docs/quality.md ("Page signals
  on the main content", "Why each default").
- **release_notes**: changelogs, "what's new", upgrade notes and release announcements are the ephemeral
  knowledge Phi-3's filter drops (their facts expire with the next version). They name themselves in the
  title or first heading: a changelog / release-notes / what's-new title, a NEWS file, or a release word next
  to a version number. The word "news" alone is not one: it names news sites and sections. What it catches
  on the train split is in docs/quality.md ("Why each default").
"""
from __future__ import annotations

import re

from assay.curation.document import Document, Rejection
from assay.curation.stage import Stage


class LinkDensityFilter(Stage):
    name = "link_density"

    def __init__(self, max_link_share: float = 0.4, min_words: int = 300):
        if not 0.0 < max_link_share <= 1.0:
            raise ValueError(f"link_density.max_link_share must be in (0, 1], got {max_link_share}")
        if min_words < 0:
            raise ValueError(f"link_density.min_words must be >= 0, got {min_words}")
        self.max_link_share = max_link_share
        self.min_words = min_words

    def process(self, doc: Document) -> Document | Rejection:
        main, page = doc.meta.get("link_share"), doc.meta.get("page_link_share")
        if main is not None and main > self.max_link_share:
            return Rejection.of(doc, self.name, "link_heavy",
                                detail=f"{main:.0%} of the main content's visible text is link text "
                                       f"(max_link_share {self.max_link_share:g})")
        if page is not None and page > self.max_link_share:
            words = len(doc.text.split())
            if words < self.min_words:
                return Rejection.of(doc, self.name, "link_heavy",
                                    detail=f"{page:.0%} of the page's visible text is link text and its main text "
                                           f"has {words} words (max_link_share {self.max_link_share:g}, "
                                           f"min_words {self.min_words})")
        return doc


#: names a page as a changelog, release notes or "what's new" on its own
_NAMED = re.compile(r"\b(change ?logs?|release notes?|release history|what.?s new)\b", re.I)
#: a project's NEWS file, named as GNU projects name it: upper case and alone ("NEWS", or "NEWS - GNU Make" once
#: the site suffix is cut); the word "news" otherwise names news sites and sections ("Local News | ...",
#: "BREAKING NEWS: ..."), not release notes
_NEWS_FILE = re.compile(r"^NEWS\s*$")
#: a release word that marks release notes only next to a version number ("Changes in Varnish 7.1",
#: "News in 2.4")
_RELEASE_WORD = re.compile(r"\b(changes|changed|release[sd]?|upgrading|upgrade|announc\w*|new features|news)\b",
                           re.I)
_VERSION = re.compile(r"\b\d+\.\d+|\b(release|version)\s+\d+", re.I)
#: "Version 0.16.1 (May 11, 2015)", "v2.3"
_VERSION_TITLE = re.compile(r"^(version|v)\s*\d+\.\d+", re.I)
#: section numbers in front of a title ("19.6. Upgrading a PostgreSQL Cluster", "E.1. Release 15.2")
_SECTION_NUMBER = re.compile(r"^([A-Z]\.)?(\d+\.)*\d+\.?\s+")
#: the site suffix of a <title> ("Changes in Varnish 7.1 — Varnish version 7.1.1 documentation")
_TITLE_SUFFIX = re.compile(r"\s+[—–|-]\s+")


def release_title(title: str) -> bool:
    """Does this title or heading name release notes?"""
    t = _SECTION_NUMBER.sub("", " ".join(title.replace("\xa0", " ").split()))
    return bool(_NAMED.search(t) or _NEWS_FILE.match(t) or (_RELEASE_WORD.search(t) and _VERSION.search(t))
                or _VERSION_TITLE.search(t))


class ReleaseNotesFilter(Stage):
    name = "release_notes"

    def process(self, doc: Document) -> Document | Rejection:
        heading = doc.meta.get("heading") or ""
        title = _TITLE_SUFFIX.split(doc.meta.get("title") or "")[0]
        for field, value in (("heading", heading), ("title", title)):
            if value and release_title(value):
                return Rejection.of(doc, self.name, "release_notes",
                                    detail=f"the page's {field} names release notes: {value[:120]!r}")
        return doc
