"""spaCy's word split, the one datatrove's filters and MinHash use, computed without building a spaCy Doc.

datatrove splits text into words with spaCy's rule-based tokenizer (`spacy.blank(lang)`) inside a memory zone,
so every document pays spaCy's affix regexes and a Token object per word again: the larger part of the filters'
time on distinct pages. This module runs spaCy 3's own tokenization algorithm in Python, with the tokenizer's own
regexes and special-case table, and remembers each whitespace chunk's tokens (bounded):

1. whitespace: spaCy splits on the characters `str.isspace` knows, as `str.split()` does; a separator other than
   one space becomes a whitespace token, which datatrove drops (`strip_strings`), so the words are the chunks'
   tokens in order;
2. each chunk: special cases, prefixes and suffixes (spaCy's `_split_affixes`), then URLs, infixes and special
   cases (`_attach_tokens`), step for step;
3. the special-case matcher over the whole token sequence (`_apply_special_cases`): every occurrence of a
   pattern, the longest kept where they overlap, a kept one replaced by its special case's tokens. A chunk's own
   matches are worked out once with the chunk; the whole sequence is matched again only when a pattern may span
   the edge of a chunk with a match of its own (a match across chunks changes no token, since no special case
   holds a space, but it can keep a chunk's own match from applying).

A text containing "IS_ALPHA", which datatrove treats specially, goes to datatrove's own split. Tests compare
with a fresh datatrove tokenizer on every page of the quality and sample corpora, and chunk by chunk with spaCy.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from itertools import chain

from assay.curation.fast.regex_chars import Alternatives, anchored, edge_chars
from assay.curation.fast.spacy_rules import TokenizerRules

_SEPARATORS = re.compile(r"\s+")  # for str, `\s` is `str.isspace`, the whitespace `str.split()` splits on
_CHUNKS = re.compile(r"\S+")


def _edge_of(pattern: re.Pattern | None, start: bool | None) -> frozenset[str] | None:
    """From assay/curation/fast/regex_chars.py: the first characters of an anchored-at-start pattern (start=True), the
    last
    characters of an anchored-at-end one (start=False), the first characters anywhere (start=None); None where
    that is not known."""
    if pattern is None or (start is not None and not anchored(pattern, at_end=not start)):
        return None
    return edge_chars(pattern, from_end=start is False)


class SpacyWordSplit:
    """text -> spaCy's non-whitespace tokens, for the tokenizer `rules` describe (assay/curation/fast/spacy_rules.py);
    `whole_text` (datatrove's own word split) takes the texts spaCy's rules are not followed for here. At most
    `max_words` chunks are remembered."""

    def __init__(self, rules: TokenizerRules, whole_text: Callable[[str], list[str]], max_words: int = 200_000):
        self.rules = rules
        self.whole_text = whole_text
        self.max_words = max_words
        prefix, suffix, infix = rules.compiled("prefix"), rules.compiled("suffix"), rules.compiled("infix")
        self._prefix = prefix.search if prefix is not None else None
        self._suffix = suffix.search if suffix is not None else None
        self._infixes = infix.finditer if infix is not None else None
        token_match, url_match = rules.compiled("token_match"), rules.compiled("url_match")
        self._token_match = token_match.match if token_match is not None else None
        self._url_match = url_match.match if url_match is not None else None
        # the characters a prefix can start with, a suffix end with, an infix start with: a chunk that shows none
        # of them where they would have to be needs no search (None: always search)
        self._prefix_first = _edge_of(prefix, start=True)
        self._suffix_last = _edge_of(suffix, start=False)
        self._infix_first = _edge_of(infix, start=None)
        # the suffix and infix patterns cut down to the alternatives that can match the chunk at hand
        self._suffix_alts = Alternatives.of(suffix, from_end=True) if self._suffix_last else None
        self._infix_alts = Alternatives.of(infix) if self._infix_first else None
        self._suffix_by_char: dict[str, re.Pattern | None] = {}
        self.specials = rules.specials
        self.memo: dict[str, tuple[str, ...]] = {}  # chunk -> its tokens
        self.own: dict[str, tuple[str, ...]] = {}  # kept chunks with a match of their own -> tokens before it
        self.patterns = rules.patterns
        self.by_first: dict[str, list[tuple[str, ...]]] = {}
        for p in sorted(self.patterns):
            self.by_first.setdefault(p[0], []).append(p)
        multi = [p for p in self.patterns if len(p) > 1]
        self.lengths = sorted({len(p) for p in multi})
        # what steps 1 and 3 rest on: no pattern holds a whitespace token (it would match across whitespace
        # tokens), no special case holds whitespace and more (it could apply across chunks)
        self.usable = not any(not t.strip() for p in multi for t in p) and \
            not any(s.strip() and any(c.isspace() for c in s) for s in self.specials)
        self._punct_memo: dict[str, bool] = {}

    # -------------------------------------------------------------------------------------------- one chunk

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """spaCy's tokens of one whitespace-free chunk on its own."""
        return self._chunk(chunk)[0]

    def _chunk(self, chunk: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(tokens, the tokens before the matcher where a match in them could change a token, else None)."""
        tokens = self._affix_tokens(chunk)
        if not self._has_pattern(tokens):
            return tokens, None
        chunk_of = [0] * len(tokens)
        spans = self._matches(tokens, chunk_of, set())
        if all(self.specials.get("".join(tokens[a:b]), tokens[a:b]) == tokens[a:b] for a, b in spans):
            return tokens, None  # every match would give back the tokens it covers, whichever are kept
        return tuple(self._apply_specials(list(tokens), chunk_of, spans)), tokens

    def _has_pattern(self, tokens: tuple[str, ...]) -> bool:
        by_first = self.by_first
        for i, t in enumerate(tokens):
            for p in by_first.get(t, ()):
                if tokens[i:i + len(p)] == p:
                    return True
        return False

    def _affix_tokens(self, s: str) -> tuple[str, ...]:
        """spaCy's `_split_affixes` and `_attach_tokens` (with special cases), step for step."""
        specials, prefix_search, suffix_search, token_match = (self.specials, self._prefix, self._suffix,
                                                               self._token_match)
        prefix_first, suffix_last, infix_first = self._prefix_first, self._suffix_last, self._infix_first
        hit = specials.get(s)
        if hit is not None:
            return hit
        if (prefix_first is not None and suffix_last is not None and infix_first is not None
                and s[0] not in prefix_first and s[-1] not in suffix_last and infix_first.isdisjoint(s)):
            return (s,)  # what the steps below come to when no prefix, suffix or infix can match
        prefixes: list[str] = []
        suffixes: list[str] = []
        last_size = 0
        while s and len(s) != last_size:
            if token_match is not None and token_match(s):
                break
            if s in specials:
                break
            last_size = len(s)
            if prefix_first is not None and s[0] not in prefix_first:
                m = None
            else:
                m = prefix_search(s) if prefix_search is not None else None
            pre_len = m.end() - m.start() if m is not None else 0
            if pre_len:
                prefix, minus_pre = s[:pre_len], s[pre_len:]
                if minus_pre and minus_pre in specials:
                    s = minus_pre
                    prefixes.append(prefix)
                    break
            if suffix_last is not None and (pre_len >= len(s) or s[-1] not in suffix_last):
                m = None
            elif self._suffix_alts is not None:
                narrowed = self._suffix_for(s[-1])
                m = narrowed.search(s[pre_len:]) if narrowed is not None else None
            else:
                m = suffix_search(s[pre_len:]) if suffix_search is not None else None
            suf_len = m.end() - m.start() if m is not None else 0
            if suf_len:
                suffix, minus_suf = s[-suf_len:], s[:-suf_len]
                if minus_suf and minus_suf in specials:
                    s = minus_suf
                    suffixes.append(suffix)
                    break
            if pre_len and suf_len and (pre_len + suf_len) <= len(s):
                s = s[pre_len:-suf_len]
                prefixes.append(prefix)
                suffixes.append(suffix)
            elif pre_len:
                s = minus_pre
                prefixes.append(prefix)
            elif suf_len:
                s = minus_suf
                suffixes.append(suffix)
        tokens = prefixes
        if s:
            hit = specials.get(s)
            if hit is not None:
                tokens.extend(hit)
            elif infix_first is not None and infix_first.isdisjoint(s):
                tokens.append(s)  # no infix can match: one token, whether it is a URL or not
            elif (token_match is not None and token_match(s)) or (self._url_match is not None and self._url_match(s)):
                tokens.append(s)
            else:
                if self._infix_alts is not None:
                    narrowed = self._infix_alts.narrowed(infix_first.intersection(s))
                    matches = list(narrowed.finditer(s)) if narrowed is not None else []
                else:
                    matches = list(self._infixes(s)) if self._infixes is not None else []
                if not matches:
                    tokens.append(s)
                else:
                    start = 0
                    for match in matches:
                        infix_start, infix_end = match.start(), match.end()
                        if infix_start == 0:
                            continue
                        if infix_start != start:
                            tokens.append(s[start:infix_start])
                        if infix_start != infix_end:
                            tokens.append(s[infix_start:infix_end])
                        start = infix_end
                    if s[start:]:
                        tokens.append(s[start:])
        tokens.extend(reversed(suffixes))
        return tuple(tokens)

    def _suffix_for(self, last: str) -> re.Pattern | None:
        """The suffix pattern's alternatives that can end with `last` (all of its matches end the chunk)."""
        if last not in self._suffix_by_char:
            self._suffix_by_char[last] = self._suffix_alts.narrowed(frozenset(last))
        return self._suffix_by_char[last]

    # -------------------------------------------------------------------------------------------- the matcher

    def _matches(self, tokens, chunk_of: list[int], barriers: set[int]) -> set[tuple[int, int]]:
        """Every occurrence of a pattern in tokens before the matcher, as (start, end): `chunk_of` numbers each
        token's chunk, `barriers` holds the chunks that follow a separator other than one space (a whitespace
        token sits there, and no pattern holds one)."""
        by_first = self.by_first
        spans = set()
        for i, t in enumerate(tokens):
            for p in by_first.get(t, ()):
                end = i + len(p)
                if tuple(tokens[i:end]) == p and not any(
                        c in barriers for c in range(chunk_of[i] + 1, chunk_of[end - 1] + 1)):
                    spans.add((i, end))
        return spans

    def _apply_specials(self, tokens: list[str], chunk_of: list[int], spans: set[tuple[int, int]]) -> list[str]:
        """spaCy's `_apply_special_cases`, given the matches."""
        specials = self.specials
        if not spans:
            return tokens
        # `_filter_special_spans`: longest first, then leftmost; a span is kept when neither its first nor its
        # last token was covered by a span looked at before it (kept or not)
        seen: set[int] = set()
        kept = []
        for a, b in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
            if a not in seen and b - 1 not in seen:
                kept.append((a, b))
            seen.update(range(a, b))
        out: list[str] = []
        i = 0
        for a, b in sorted(kept):
            out.extend(tokens[i:a])
            # the span's text: across chunks it holds a space, and no special case does
            rule = specials.get("".join(tokens[a:b])) if chunk_of[a] == chunk_of[b - 1] else None
            out.extend(rule if rule is not None else tokens[a:b])
            i = b
        out.extend(tokens[i:])
        return out

    # -------------------------------------------------------------------------------------------- a text

    def __call__(self, text: str) -> list[str]:
        if not self.usable or "IS_ALPHA" in text:
            return self.whole_text(text)
        memo, own = self.memo, self.own
        chunks = text.split()
        found = list(map(memo.get, chunks))
        unkept: dict[str, tuple[str, ...]] = {}  # chunks with a match of their own the memo had no room for
        if None in found:
            for i, tokens in enumerate(found):
                if tokens is None:
                    chunk = chunks[i]
                    tokens = memo.get(chunk)  # a chunk seen earlier in this text
                    if tokens is None:
                        tokens, before = self._chunk(chunk)
                        if len(memo) < self.max_words:
                            memo[chunk] = tokens
                            if before is not None:
                                own[chunk] = before
                        elif before is not None:
                            unkept[chunk] = before
                    found[i] = tokens
        words = list(chain.from_iterable(found))
        if unkept or (own and not own.keys().isdisjoint(chunks)):
            owners = []
            offset = 0
            for chunk, tokens in zip(chunks, found):
                before = own.get(chunk) or unkept.get(chunk)
                if before is not None:
                    owners.append((offset, offset + len(tokens), before))
                offset += len(tokens)
            if self._pattern_across(words, owners):
                return self._rematch(text)
        return words

    def _pattern_across(self, words: list[str], owners: list[tuple[int, int, tuple[str, ...]]]) -> bool:
        """Could a pattern match across the start or end of a chunk with a match of its own? Only such a match
        can change a token: one across chunks that overlaps no such chunk only overlaps chunks without matches.
        Looked for in the tokens before the matcher, across every such edge, whatever the separator."""
        before: list[str] = []
        edges: list[int] = []
        i = 0
        for a, b, pre in owners:
            before.extend(words[i:a])
            edges.append(len(before))
            before.extend(pre)
            edges.append(len(before))
            i = b
        before.extend(words[i:])
        patterns, n = self.patterns, len(before)
        for k in edges:
            for length in self.lengths:
                for s in range(max(0, k - length + 1), k):
                    if s + length <= n and tuple(before[s:s + length]) in patterns:
                        return True
        return False

    def _rematch(self, text: str) -> list[str]:
        """The matcher over the whole text's tokens (step 3 in full)."""
        tokens: list[str] = []
        chunk_of: list[int] = []
        barriers: set[int] = set()
        separators = _SEPARATORS.findall(text.strip())
        for n, chunk in enumerate(text.split()):
            if n and separators[n - 1] != " ":
                barriers.add(n)
            # before the matcher: a chunk with a match of its own is in `own`, any other remembered one unchanged
            before = self.own.get(chunk) or self.memo.get(chunk) or self._affix_tokens(chunk)
            tokens.extend(before)
            chunk_of.extend([n] * len(before))
        return self._apply_specials(tokens, chunk_of, self._matches(tokens, chunk_of, barriers))

    # -------------------------------------------------------------------------------------------- sentences

    def _is_punct(self, token: str) -> bool:
        """spaCy's IS_PUNCT lexical attribute: every character in a Unicode punctuation category."""
        known = self._punct_memo.get(token)
        if known is None:
            known = all(unicodedata.category(c).startswith("P") for c in token)
            if len(self._punct_memo) < self.max_words:
                self._punct_memo[token] = known
        return known

    def sentence_count(self, text: str) -> int | None:
        """How many parts datatrove's `split_into_sentences(text)` gives: the sentences spaCy's sentencizer finds,
        at least one. None where the rules hold no sentencizer or the text is left to datatrove.

        The sentencizer starts a sentence at the first token after one of its marks that is neither punctuation
        nor a mark; whitespace tokens count as such tokens, and there is one wherever whitespace other than a
        single space follows a chunk (and before a text's first chunk)."""
        punct = self.rules.sentence_punct
        if not punct or not self.usable or "IS_ALPHA" in text or any(not p.strip() for p in punct):
            return None
        words = self(text)
        count, seen, w, pos = 1, False, 0, 0
        for m in _CHUNKS.finditer(text):
            gap = text[pos:m.start()]
            if gap and (pos == 0 or gap != " ") and seen:  # a whitespace token
                count, seen = count + 1, False
            consumed, size = 0, m.end() - m.start()
            while consumed < size:
                if w >= len(words):
                    return None
                token = words[w]
                w += 1
                consumed += len(token)
                if token in punct:
                    seen = True
                elif seen and not self._is_punct(token):
                    count, seen = count + 1, False
            if consumed != size:
                return None
            pos = m.end()
        if text[pos:] not in ("", " ") and seen:  # a whitespace token at the end
            count += 1
        return count
