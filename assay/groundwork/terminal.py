"""Text from data, shown on a terminal. A document, a predicate or a path someone else wrote may hold rich
markup ("[/quote]" makes rich raise MarkupError, "[link=...]" makes a link) or control characters (ANSI escape
sequences that move the cursor, retitle the window or hide what follows): shown through these, it is shown as
the characters it is, with control characters replaced by U+FFFD.
"""
from __future__ import annotations

import re
from typing import Any

#: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that reorder a line
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """`value` as a string with its control characters replaced (None: empty)."""
    return "" if value is None else CONTROL.sub("\ufffd", str(value))


def plain_text(value: Any, limit: int = 0):
    """A rich Text of `printable(value)`, never read as markup; cut to `limit` characters with "..." when given."""
    from rich.text import Text

    text = printable(value)
    if limit and len(text) > limit:
        text = text[: limit - 3] + "..."
    return Text(text)


def escaped(value: Any) -> str:
    """`printable(value)` with rich markup escaped, to put inside a string that holds markup of its own."""
    from rich.markup import escape

    return escape(printable(value))
