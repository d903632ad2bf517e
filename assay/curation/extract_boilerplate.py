"""A boilerplate pass over resiliparse's main-content text: link lists, share/tag/login lines, "related" sections.

Why: resiliparse's main-content heuristics keep what sits inside the article's container: link lists of other
stories, "Share / Tweet / Print" rows, "Tags:" lines, "Also on ...:" sections of teasers. That boilerplate then
feeds language ID, the repetition filters, the classifiers and dedup (issue #29; docs/quality.md has the numbers).

The pass works on lines (one block per line, as the stage writes them) whose link text is marked: `mark_links`
wraps every <a> element's content in two control characters before parsing, so one resiliparse call yields the
text and, per line, how much of it is link text. Rules and thresholds were chosen on the tuning sources of
benchmarks/extraction_quality.py (CleanEval-final, Dragnet, newspaper's fixtures) only.
"""
from __future__ import annotations

import re

LINK_START, LINK_END = "\x01", "\x02"
_A_OPEN = re.compile(r"(<a\b[^>]*>)", re.I)  # every <a>, as the link_density filter was calibrated
_A_CLOSE = re.compile(r"(</a\s*>)", re.I)
_MARKS = str.maketrans("", "", LINK_START + LINK_END)
_MARK_SPLIT = re.compile("([\x01\x02])")

#: a line at least this share link text, and at most MAX_LINK_LINE_WORDS words long, is a menu entry, a teaser
#: link or a tag list rather than a sentence of the article (a paragraph with a link in it stays)
LINK_LINE_SHARE = 0.5
MAX_LINK_LINE_WORDS = 12
#: short lines that are page furniture whatever their markup (matched after list bullets are stripped)
MAX_FURNITURE_WORDS = 8
_FURNITURE = re.compile(
    r"^(share( this( (article|story|post|page))?)?|tweet|print( this( article| page)?)?|e-?mail( this)?|"
    r"follow us.*|tags?:.*|categories:.*|filed under:?.*|posted in .*|\d+ comments?( posted)?|"
    r"leave a (comment|reply)|advertisement|loading.*|read more.*|continue reading.*|click here.*|"
    r"subscribe.*|sign up.*|log ?in|sign in|register|password|username.*|skip to .*|back to top|"
    r".*all rights reserved.*|©.*|copyright ©?.*|privacy policy.*|terms of (use|service).*)$", re.I)
#: a short heading that opens a section of teasers: what follows it is dropped while it looks like teasers
#: (short lines, list items or link text), up to the first longer plain paragraph
_TEASER_SECTION = re.compile(
    r"^(also on .*|related( stories| articles| posts| links| items| content| coverage)?|"
    r"more (from|on|in|stories|news) .*|you (may|might) also like.*|recommended.*|popular( posts| stories)?|"
    r"most (popular|read|viewed).*|read next|trending.*|latest (news|posts|stories).*|"
    r"recent (posts|comments|stories)):?$", re.I)
MAX_TEASER_SECTION_HEADING_WORDS = 6
#: inside a teaser section, a line at least this share link text, or of at most MAX_TEASER_WORDS words, or a
#: bulleted line, is a teaser; the first other line ends the section
TEASER_LINK_SHARE = 0.3
MAX_TEASER_WORDS = 12


def mark_links(html: str) -> str:
    """The page with every <a> element's content between LINK_START and LINK_END (a regex pass, no DOM walk)."""
    return _A_CLOSE.sub(LINK_END + r"\1", _A_OPEN.sub(r"\1" + LINK_START, html))


def unmark(text: str) -> str:
    return text.translate(_MARKS)


def link_chars(text: str) -> tuple[int, int]:
    """(visible characters, visible characters inside links) of marked text.

    A LINK_START opens a link and a LINK_END closes it; a line break closes it too, so an <a> the page never
    closes (which the HTML parser ends at the next block) does not turn the rest of the page into link text.
    """
    visible = linked = 0
    inside = False
    for part in _MARK_SPLIT.split(text):
        if part == LINK_START:
            inside = True
        elif part == LINK_END:
            inside = False
        elif part:
            for i, piece in enumerate(part.split("\n")):
                if i:
                    inside = False
                n = len(piece) - sum(piece.count(c) for c in " \t\r\xa0")
                visible += n
                linked += n if inside else 0
    return visible, linked


def boilerplate_lines(marked_lines: list[str]) -> list[bool]:
    """For each marked line of main-content text: True where the line is boilerplate (see the module docstring)."""
    drop = []
    in_teasers = False
    for line in marked_lines:
        plain = unmark(line).strip()
        words = len(plain.split())
        visible, linked = link_chars(line)
        share = linked / visible if visible else 0.0
        bare = plain.lstrip("•*-· ").strip()
        if words <= MAX_TEASER_SECTION_HEADING_WORDS and _TEASER_SECTION.match(bare):
            in_teasers = True
            drop.append(True)
            continue
        if in_teasers:
            if share >= TEASER_LINK_SHARE or words <= MAX_TEASER_WORDS or plain.startswith("•"):
                drop.append(True)
                continue
            in_teasers = False
        drop.append((share >= LINK_LINE_SHARE and words <= MAX_LINK_LINE_WORDS)
                    or (words <= MAX_FURNITURE_WORDS and bool(_FURNITURE.match(bare))))
    return drop
