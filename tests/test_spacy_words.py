"""assay's word split (assay/curation/fast/spacy_words.py) gives the tokens of datatrove's spaCy split: on both views
of every
page of the held-out quality corpus and on the sample corpus, on made-up chunks and texts full of affixes, special
cases and odd whitespace, in other languages too, and it counts sentences as datatrove's split_into_sentences does. Its
rules file
(assay/curation/fast/spacy_rules.py) holds spaCy's rules, and with it a worker process never imports spaCy."""
import json
import os
import random
import re
import subprocess
import sys

import pytest
from corpus_views import ROOT, eval_views, sample_views
from datatrove.utils.text import split_into_sentences
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from assay.curation.fast.regex_chars import Alternatives, anchored, edge_chars
from assay.curation.fast.spacy_rules import TokenizerRules, cache_path, datatrove_rules, rules_from_spacy
from assay.curation.fast.spacy_words import SpacyWordSplit


@pytest.fixture(scope="module")
def reference():
    """A fresh datatrove tokenizer: its own split, spaCy inside a memory zone."""
    return SpaCyTokenizer("en")


@pytest.fixture(scope="module")
def rules(reference):
    return rules_from_spacy(reference.tokenizer)


class Counting:
    """Counts the calls that reach a function (here: datatrove's own split, taken where assay's cannot vouch)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def test_words_equal_datatrove_on_every_page(rules, reference):
    whole = Counting(reference.word_tokenize)
    split = SpacyWordSplit(rules, whole)
    assert split.usable
    rematch = split._rematch = Counting(split._rematch)
    texts = eval_views() + sample_views()[::2]
    for i, text in enumerate(texts):
        assert split(text) == reference.word_tokenize(text), i
    assert whole.calls == 0, "every page split by assay's code, none handed back to spaCy"
    assert rematch.calls > 0, "the corpus exercises the matcher across chunks"
    assert split.own, "and chunks with special-case matches of their own"
    # remembered tokens give the same words again
    assert all(split(text) == reference.word_tokenize(text) for text in texts[:50])


def _made_up(rng: random.Random, specials: list[str]) -> str:
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                + list(".,;:!?'\"()[]{}<>-–—_/\\|@#$%^&*+=~`…’‘“”«»§°€£¥©®™•·¿¡")
                + ["US$", "km", "n't", "'s", "...", "--", "http://", "www.", ".com", "a.m.", "e.g.", ":)", "(:", "):",
                   "é", "ß", "ü", "ﬁ", "²", "½", "中", "😀", "\u0301"])
    return "".join(rng.choice(alphabet if rng.random() < 0.85 else specials) for _ in range(rng.randint(1, 8)))


def test_made_up_chunks_and_texts_equal_spacy(rules, reference):
    split = SpacyWordSplit(rules, reference.word_tokenize)
    rng = random.Random(15)
    specials = sorted(k for k in rules.specials if k.strip())
    nlp = reference.tokenizer
    for _ in range(20_000):
        chunk = _made_up(rng, specials)
        with nlp.memory_zone():
            expected = tuple(t.text for t in nlp.tokenizer(chunk))
        assert split.chunk_tokens(chunk) == expected, chunk
    for _ in range(1_500):
        chunks = [_made_up(rng, specials) for _ in range(rng.randint(1, 40))]
        seps = [rng.choice([" ", " ", " ", "  ", "\n", " \n", "\t", "\xa0", "\u2003"]) for _ in chunks]
        text = rng.choice(["", " ", "\n"]) + "".join(c + s for c, s in zip(chunks, seps))
        assert split(text) == reference.word_tokenize(text), text


def test_sentence_counts_equal_datatrove_on_every_line(rules, reference):
    split = SpacyWordSplit(rules, reference.word_tokenize)
    rng = random.Random(3)
    lines = rng.sample(sorted({line.strip() for text in eval_views() for line in text.splitlines() if line.strip()}),
                       8_000)
    pieces = list("abc XYZ 012 .,;:!?'\"()-…。！？") + ["  ", "\t", "\xa0", " \n", ". ", "! ", "...", "e.g.", "Mr.",
                                                         ":)"]
    made_up = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(3_000)]
    more_than_one = 0
    for line in lines + made_up:
        expected = len(split_into_sentences(line, "en"))
        assert split.sentence_count(line) == expected, line
        more_than_one += expected > 1
    assert more_than_one > 500
    assert split.sentence_count("IS_ALPHA is left to datatrove.") is None


def test_rules_file_holds_spacys_rules_and_spares_the_spacy_import(tmp_path, rules):
    env = dict(os.environ, ASSAY_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    code = ("import sys\n"
            "from assay.curation.fast.spacy_rules import datatrove_rules, cache_path\n"
            "datatrove_rules('en')\n"
            "print(cache_path('en'))\n")
    built = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stderr
    path = built.stdout.strip().splitlines()[-1]
    assert os.path.exists(path) and path.startswith(str(tmp_path))
    with open(path, encoding="utf-8") as fh:
        assert TokenizerRules.from_json(json.load(fh)) == rules
    text = "Water boils at 100°C (212°F), doesn't it? See e.g. https://example.org/a-b:c — or :) not."
    code = ("import sys\n"
            "from assay.curation.fast.word_cache import install_word_split\n"
            "from datatrove.utils.text import split_into_words\n"
            f"assert install_word_split('en')\n"
            f"print(split_into_words({text!r}, 'en'))\n"
            "print('spacy' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    words, imported = run.stdout.strip().splitlines()[-2:]
    assert words == repr(SpaCyTokenizer("en").word_tokenize(text))
    assert imported == "False"


def test_rules_without_a_writable_cache_folder_or_with_a_bad_file(tmp_path, monkeypatch, rules):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(blocker / "cache"))
    assert datatrove_rules("en") == rules  # read from spaCy, nothing saved
    assert not os.path.exists(cache_path("en"))
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(tmp_path / "cache"))
    os.makedirs(os.path.dirname(cache_path("en")))
    with open(cache_path("en"), "w") as fh:
        fh.write('{"format": 0}')  # a file of another format is replaced, not trusted
    assert datatrove_rules("en") == rules
    with open(cache_path("en"), encoding="utf-8") as fh:
        assert TokenizerRules.from_json(json.load(fh)) == rules


def test_edge_characters_of_regexes():
    assert edge_chars(re.compile(r"^(?:ab|c[de])")) == {"a", "c"}
    assert edge_chars(re.compile(r"(?<=[0-9])(?:km|m)$"), from_end=True) == {"m"}
    assert edge_chars(re.compile(r"\.\.+|…")) == {".", "…"}
    assert edge_chars(re.compile(r"a?b")) == {"a", "b"}
    for unknown in (r"\w+", r"[^a]", r".x", r"a*", r"(?=a)", r"(?i)a"):
        assert edge_chars(re.compile(unknown)) is None, unknown
    assert anchored(re.compile(r"^a|^b")) and not anchored(re.compile(r"^a|b"))
    assert anchored(re.compile(r"a$|(?:b)$"), at_end=True) and not anchored(re.compile(r"a$|b"), at_end=True)
    assert [p for p in Alternatives.of(re.compile(r"a[|]|(b|c)|\|")).parts] == ["a[|]", "(b|c)", r"\|"]


def test_spacys_regexes_match_nothing_outside_their_edge_characters(reference):
    """Over every character of the Basic Multilingual Plane: a prefix never starts, a suffix never ends and an
    infix never starts with a character outside the sets the split's shortcuts rely on; and the suffix and infix
    patterns narrowed to a character's alternatives match as the whole patterns do."""
    tok = reference.tokenizer.tokenizer
    prefix, suffix, infix = (tok.prefix_search.__self__, tok.suffix_search.__self__, tok.infix_finditer.__self__)
    first, last, inner = edge_chars(prefix), edge_chars(suffix, from_end=True), edge_chars(infix)
    assert anchored(prefix) and anchored(suffix, at_end=True)
    suffixes, infixes = Alternatives.of(suffix, from_end=True), Alternatives.of(infix)
    for code in range(0x20, 0x10000):
        c = chr(code)
        if c.isspace() or 0xD800 <= code < 0xE000:
            continue
        if c not in first:
            assert prefix.search(c + "ab") is None, hex(code)
        if c not in last:
            assert suffix.search("ab" + c) is None, hex(code)
        else:
            for text in ("ab" + c, "1" + c, "." + c, c + c):
                whole, narrowed = suffix.search(text), suffixes.narrowed(frozenset(c)).search(text)
                assert (whole and whole.span()) == (narrowed and narrowed.span()), hex(code)
        if c not in inner:
            assert not list(infix.finditer("ab" + c + "cd")), hex(code)
        else:
            for text in ("ab" + c + "cd", "1" + c + "2", c + c + "x"):
                narrowed = infixes.narrowed(inner.intersection(text))
                assert [m.span() for m in infix.finditer(text)] == [m.span() for m in narrowed.finditer(text)]


@pytest.mark.parametrize("language", ["de", "fr", "es", "it", "nl", "pt"])
def test_other_languages_split_as_spacy_or_are_left_to_datatrove(language):
    """Other languages' rules (their own special cases and affixes): the split gives spaCy's tokens, or, where
    its assumptions do not hold for the language (a special case with a space, say), it is not used."""
    reference = SpaCyTokenizer(language)
    rules = rules_from_spacy(reference.tokenizer)
    assert rules is not None
    split = SpacyWordSplit(rules, reference.word_tokenize)
    if not split.usable:
        from assay.curation.fast.word_cache import _fast_split

        assert _fast_split(reference, reference.word_tokenize, 1000) is None
        return
    rng = random.Random(language)
    specials = sorted(k for k in rules.specials if k.strip())
    alphabet = list("abcdeéèàäöüßñç.,;:!?'\"()-–—«»„“/") + ["z.B.", "d.h.", "c'è", "'s", "aujourd'hui", "km", "10"]
    nlp = reference.tokenizer
    texts = []
    for _ in range(1_500):
        chunk = "".join(rng.choice(alphabet if rng.random() < 0.8 else specials) for _ in range(rng.randint(1, 6)))
        with nlp.memory_zone():
            expected = tuple(t.text for t in nlp.tokenizer(chunk))
        assert split.chunk_tokens(chunk) == expected, chunk
        texts.append(chunk)
    for start in range(0, len(texts), 30):
        text = rng.choice([" ", "  ", "\n"]).join(texts[start:start + 30])
        assert split(text) == reference.word_tokenize(text)
