"""What assay's word split needs from spaCy's tokenizer for a language, kept as plain data so that worker
processes need not import spaCy.

Importing spaCy and building `spacy.blank(lang)` costs each worker process 2-3 seconds, as much as a few hundred
pages of work. The split (assay/curation/fast/spacy_words.py) needs only the tokenizer's regexes, its special cases, the
special-case matcher's patterns and the sentencizer's punctuation marks. They are read from spaCy once and written
to a JSON file in assay's cache folder (`ASSAY_CACHE_DIR`, else ~/.cache/assay), named by the language and the
spaCy and datatrove versions; later processes read that file. Where the folder cannot be written, each process
reads spaCy itself. Tests compare the file's rules with spaCy's.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata

FORMAT = 1


@dataclass(frozen=True)
class TokenizerRules:
    """A spaCy rule-based tokenizer, as data: each regex as (pattern, flags) or None."""

    prefix: tuple[str, int] | None
    suffix: tuple[str, int] | None
    infix: tuple[str, int] | None
    token_match: tuple[str, int] | None
    url_match: tuple[str, int] | None
    specials: dict[str, tuple[str, ...]]  # special-case string -> its tokens
    patterns: frozenset[tuple[str, ...]]  # the special-case matcher's patterns
    sentence_punct: frozenset[str]  # the sentencizer's sentence-ending marks

    def compiled(self, name: str) -> re.Pattern | None:
        value = getattr(self, name)
        return re.compile(value[0], value[1]) if value is not None else None

    def to_json(self) -> dict:
        return {"format": FORMAT, "prefix": self.prefix, "suffix": self.suffix, "infix": self.infix,
                "token_match": self.token_match, "url_match": self.url_match,
                "specials": {k: list(v) for k, v in self.specials.items()},
                "patterns": sorted(list(p) for p in self.patterns), "sentence_punct": sorted(self.sentence_punct)}

    @classmethod
    def from_json(cls, data: dict) -> "TokenizerRules":
        if data.get("format") != FORMAT:
            raise ValueError(f"rules format {data.get('format')!r}, expected {FORMAT}")
        regex = {k: (tuple(data[k]) if data[k] is not None else None)
                 for k in ("prefix", "suffix", "infix", "token_match", "url_match")}
        return cls(**regex, specials={k: tuple(v) for k, v in data["specials"].items()},
                   patterns=frozenset(tuple(p) for p in data["patterns"]),
                   sentence_punct=frozenset(data["sentence_punct"]))


def _regex(method, name: str) -> tuple[str, int] | None:
    """(pattern, flags) of a compiled regex's bound `name` method; None for None; ValueError for anything else."""
    if method is None:
        return None
    pattern = getattr(method, "__self__", None)
    if not isinstance(pattern, re.Pattern) or getattr(method, "__name__", "") != name:
        raise ValueError(f"the tokenizer's {name} is not a compiled regex's {name}")
    return pattern.pattern, pattern.flags


def rules_from_spacy(nlp) -> TokenizerRules | None:
    """The rules of a `spacy.blank` pipeline's tokenizer (and its sentencizer, if any); None where the tokenizer is
    not spaCy's rule-based one or holds something other than compiled regexes."""
    from spacy.attrs import ORTH
    from spacy.tokenizer import Tokenizer

    tok = nlp.tokenizer
    if type(tok) is not Tokenizer:
        return None
    try:
        regexes = dict(prefix=_regex(tok.prefix_search, "search"), suffix=_regex(tok.suffix_search, "search"),
                       infix=_regex(tok.infix_finditer, "finditer"), token_match=_regex(tok.token_match, "match"),
                       url_match=_regex(tok.url_match, "match"))
    except ValueError:
        return None
    specials = {s: tuple(p[ORTH] if ORTH in p else p["ORTH"] for p in pieces) for s, pieces in tok.rules.items()}
    # the matcher's patterns, as `add_special_case` builds them: the special string tokenized without special
    # cases, for strings with an affix or an infix (or a space; every string without `faster_heuristics`)
    plain = Tokenizer(tok.vocab, rules={}, prefix_search=tok.prefix_search, suffix_search=tok.suffix_search,
                      infix_finditer=tok.infix_finditer, token_match=tok.token_match, url_match=tok.url_match)
    patterns = set()
    with nlp.memory_zone():
        for s in tok.rules:
            if not tok.faster_heuristics or tok.find_prefix(s) or tok.find_infix(s) or tok.find_suffix(s) or " " in s:
                patterns.add(tuple(t.text for t in plain(s)))
    punct: frozenset[str] = frozenset()
    if "sentencizer" in nlp.pipe_names:
        punct = frozenset(nlp.get_pipe("sentencizer").punct_chars)
    return TokenizerRules(**regexes, specials=specials, patterns=frozenset(patterns), sentence_punct=punct)


def cache_dir() -> str:
    return os.environ.get("ASSAY_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "assay")


def cache_path(language: str) -> str:
    versions = f"spacy{metadata.version('spacy')}-datatrove{metadata.version('datatrove')}-py{sys.version_info[0]}" \
               f".{sys.version_info[1]}"
    return os.path.join(cache_dir(), f"spacy-rules-{language}-{versions}-v{FORMAT}.json")


def datatrove_rules(language: str) -> TokenizerRules | None:
    """The rules of the spaCy tokenizer datatrove builds for `language` (`SpaCyTokenizer`: `spacy.blank` plus a
    sentencizer), from the cache file, else from spaCy (and then saved); None where datatrove's tokenizer for the
    language is not a plain `spacy.blank` one."""
    path = cache_path(language)
    try:
        with open(path, encoding="utf-8") as fh:
            return TokenizerRules.from_json(json.load(fh))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from datatrove.utils.word_tokenizers import SpaCyTokenizer

    tokenizer = SpaCyTokenizer(language)  # a fresh one: the same rules as datatrove's shared instance
    if tokenizer.config is not None:  # zh, ja, vi: segmenters or custom tokenizers
        return None
    rules = rules_from_spacy(tokenizer.tokenizer)
    if rules is not None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(rules.to_json(), fh)
            os.replace(tmp, path)
        except OSError:  # a read-only home: each process reads spaCy itself
            pass
    return rules
