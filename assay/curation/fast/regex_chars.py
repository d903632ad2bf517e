"""Which characters a regular expression's match can begin or end with, read from the pattern itself.

spaCy's tokenizer asks three large regexes (prefixes, suffixes, infixes) about every new chunk of text; most
chunks start, end and are made of characters none of them can consume. Knowing the characters a match can begin
(or end) with lets assay/curation/fast/spacy_words.py skip a search whose answer is certain, and so give the same
tokens.
The sets are worked out from Python's parse of the pattern (`re._parser`) and err only towards too many
characters: zero-width assertions are looked through, and anything not understood (categories such as `\\w`,
negated sets, any-character, backreferences, case-insensitive matching, a match that may be empty) gives None,
which means "no shortcut".
"""
from __future__ import annotations

import re

try:  # Python 3.11+
    from re import _constants as C
    from re import _parser as P
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

_ZERO_WIDTH = (C.AT, C.ASSERT, C.ASSERT_NOT)
_REPEATS = tuple(op for op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)) if op is not None)


class _Unknown(Exception):
    pass


def _in_set(items) -> set[tuple[int, int]]:
    ranges = set()
    for op, av in items:
        if op is C.LITERAL:
            ranges.add((av, av))
        elif op is C.RANGE:
            ranges.add(av)
        else:  # NEGATE, CATEGORY (\w, \d, \s...), and what else may come
            raise _Unknown
    return ranges


def _edge(items, from_end: bool) -> tuple[set[tuple[int, int]], bool]:
    """(characters the first (or last) consumed character can be, whether the sequence can match empty)."""
    found: set[tuple[int, int]] = set()
    for op, av in (reversed(items) if from_end else items):
        if op in _ZERO_WIDTH:
            continue
        if op is C.LITERAL:
            chars, empty = {(av, av)}, False
        elif op is C.IN:
            chars, empty = _in_set(av), False
        elif op is C.BRANCH:
            chars, empty = set(), False
            for branch in av[1]:
                b_chars, b_empty = _edge(list(branch), from_end)
                chars |= b_chars
                empty = empty or b_empty
        elif op is C.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if (add_flags | del_flags) & re.IGNORECASE:
                raise _Unknown
            chars, empty = _edge(list(sub), from_end)
        elif op in _REPEATS:
            low, _high, sub = av
            chars, empty = _edge(list(sub), from_end)
            empty = empty or low == 0
        elif op is getattr(C, "ATOMIC_GROUP", None):
            chars, empty = _edge(list(av), from_end)
        else:  # ANY, NOT_LITERAL, GROUPREF, ...
            raise _Unknown
        found |= chars
        if not empty:
            return found, False
    return found, True


def _parse(pattern: re.Pattern):
    if pattern.flags & re.IGNORECASE:
        raise _Unknown
    return list(P.parse(pattern.pattern, pattern.flags))


#: larger sets are not worth enumerating (a shortcut only pays when membership is a set lookup)
MAX_CHARS = 200_000


def edge_chars(pattern: re.Pattern, from_end: bool = False) -> frozenset[str] | None:
    """Every character a non-empty match of `pattern` can begin with (or end with, `from_end`); None when that
    is not known, when a match may be empty, or when there are more than MAX_CHARS of them."""
    try:
        ranges, empty = _edge(_parse(pattern), from_end)
    except _Unknown:
        return None
    if empty or sum(hi - lo + 1 for lo, hi in ranges) > MAX_CHARS:
        return None
    return frozenset(chr(c) for lo, hi in ranges for c in range(lo, hi + 1))


def _every_branch_anchored(items, at_code) -> bool:
    """Does every way through the pattern pass the anchor (^ or $) before (after) consuming anything?"""
    from_end = C.AT_END in at_code
    for op, av in (reversed(items) if from_end else items):
        if op is C.AT:
            if av in at_code:
                return True
            continue
        if op in (C.ASSERT, C.ASSERT_NOT):
            continue
        if op is C.BRANCH:
            return all(_every_branch_anchored(list(b), at_code) for b in av[1])
        if op is C.SUBPATTERN:
            return _every_branch_anchored(list(av[3]), at_code)
        return False
    return False


def anchored(pattern: re.Pattern, at_end: bool = False) -> bool:
    """Can every match only start at the string's start (`^`), or only end at its end (`$`, `at_end`; for `$`,
    in a string without a newline)?"""
    if pattern.flags & re.MULTILINE:
        return False
    codes = (C.AT_END, C.AT_END_STRING) if at_end else (C.AT_BEGINNING, C.AT_BEGINNING_STRING)
    try:
        return _every_branch_anchored(_parse(pattern), codes)
    except _Unknown:
        return False


def split_alternatives(pattern: re.Pattern) -> list[str] | None:
    """The pattern's top-level alternatives, as source text (`a|b(c|d)` -> `a`, `b(c|d)`); None in verbose mode,
    where whitespace and comments change what a `|` is."""
    if pattern.flags & re.VERBOSE or not isinstance(pattern.pattern, str):
        return None
    src, parts, depth, start, i = pattern.pattern, [], 0, 0, 0
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # a class runs to the first "]" that is not its first member (after an optional "^")
            i += 1
            if i < len(src) and src[i] == "^":
                i += 1
            if i < len(src) and src[i] == "]":
                i += 1
            while i < len(src) and src[i] != "]":
                i += 2 if src[i] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(src[start:i])
            start = i + 1
        i += 1
    parts.append(src[start:])
    return parts


class Alternatives:
    """A pattern narrowed to the top-level alternatives that could match, given the characters at hand.

    Python tries a pattern's alternatives in order at each position, so leaving out alternatives that cannot
    match a string changes no match of it: `narrowed(chars)` keeps, in order, the alternatives whose first
    (or, `from_end`, last) character can be one of `chars`, and is the same as the whole pattern for any string
    whose relevant characters (the first ones anywhere, or the last one) are among `chars`. None from
    `Alternatives.of` where an alternative's edge characters are not known.
    """

    def __init__(self, pattern: re.Pattern, parts: list[str], edges: list[frozenset[str]]):
        self.pattern, self.parts, self.edges = pattern, parts, edges
        self._cache: dict[frozenset[str], re.Pattern | None] = {}

    @classmethod
    def of(cls, pattern: re.Pattern, from_end: bool = False) -> "Alternatives | None":
        parts = split_alternatives(pattern)
        if not parts:
            return None
        edges = []
        for part in parts:
            try:
                sub = re.compile(part, pattern.flags)
            except re.error:
                return None
            chars = edge_chars(sub, from_end)
            if chars is None:
                return None
            edges.append(chars)
        whole = re.compile("|".join(parts), pattern.flags)
        if whole.pattern != pattern.pattern:
            return None
        return cls(pattern, parts, edges)

    def narrowed(self, chars: frozenset[str]) -> re.Pattern | None:
        """The pattern of the alternatives that can use `chars`, in order; None when there are none."""
        if chars not in self._cache:
            if len(self._cache) > 4096:  # only for the characters seen together in a chunk: stays small
                self._cache.clear()
            kept = [p for p, e in zip(self.parts, self.edges) if not e.isdisjoint(chars)]
            self._cache[chars] = re.compile("|".join(kept), self.pattern.flags) if kept else None
        return self._cache[chars]
