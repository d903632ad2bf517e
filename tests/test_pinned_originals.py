"""assay/curation/fast/ re-implements internals of the spaCy and datatrove versions pinned in pyproject.toml. On a few
fixed
texts, in seconds, these checks compare each re-implementation with its original, so an upgrade of either library
that changes a decision (a token, a filter's verdict or reason, an n-gram count, a MinHash band key) fails here by
name. tests/test_spacy_words.py and tests/test_fast_filters.py compare the same on whole corpora."""
import hashlib
import re
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from datatrove.data import Document as DtDocument
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from assay.curation.dedup import MinHashConfig, MinHasher
from assay.curation.fast.ngram_stats import NgramStats
from assay.curation.fast.shingles import simplify_text as our_simplify_text
from assay.curation.fast.spacy_rules import rules_from_spacy
from assay.curation.fast.spacy_words import SpacyWordSplit
from assay.curation.fast.word_cache import install_word_split
from assay.curation.filters import FILTERS

ROOT = Path(__file__).resolve().parents[1]
UPGRADE = ("{name} {installed} is installed, but assay/curation/fast/ copies the internals of {name} {pinned} "
           "(pyproject.toml): "
           "run tests/test_pinned_originals.py, tests/test_spacy_words.py and tests/test_fast_filters.py on the new "
           "version, bring assay/curation/fast/ in line where they fail, then move the pin")

PROSE = ("The cache keeps a copy of every response it serves. When a client asks again, the copy is returned "
         "without asking the origin server, which saves time and bandwidth. Entries expire after a while, and "
         "the server may say how long a response stays fresh. ")
VARIED = ("A hash table maps keys to values by computing an index from each key. Collisions happen when two keys "
          "land in the same slot, and there are several ways to handle them: chaining stores a short list in every "
          "slot, while open addressing probes the following slots until it finds a free one.\n"
          "The load factor is the number of stored entries divided by the number of slots. As it grows, lookups "
          "slow down, so most implementations resize the table once a threshold is crossed. Resizing means "
          "allocating a larger array and inserting every entry again, which is expensive but rare.\n"
          "Good hash functions spread similar keys far apart. Python, for example, randomizes string hashes at "
          "startup to make denial-of-service attacks harder. In practice, a well-tuned table answers most "
          "queries in constant time, which is why dictionaries are everywhere in modern programs.")
#: fixed texts: prose, repetition, code, lists, affixes, URLs, abbreviations, numbers, the lines C4 removes
TEXTS = [
    VARIED,
    VARIED.replace("\n", " ") + "\n" + "Call f() with {a: 1}.\n" + "Terms of use apply. See [2].",
    PROSE * 3,
    "\n".join([PROSE, "Click here. Click here. Click here.", "Click here. Click here.", PROSE]),
    "def f(x):\n    return {x: 1}\n\nThe function above returns a dict. It is used below.\n" * 6,
    "- item one\n- item two\n- item three\n• bullet\n" * 12 + "That is the list...",
    "Don't panic: the U.S. dollar rose 12.5% (vs. 3.2%) on 2024-05-01, e-mail info@example.org or see "
    "https://example.org/a/b?c=d#e. It's \"quoted\", isn't it? Well—maybe… [1] [citation needed] " * 8,
    "lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20,
    "Please enable JavaScript to view this page.\nWe use cookies. By using this site you agree to the terms "
    "of use and the privacy policy.\n" + PROSE * 2,
    "the the the the the the the the the the the the the the the the the the the the the the the the",
    "# heading\n### another\n#### #tag #tag #tag\n" * 10 + PROSE,
    "short text.",
    "Ça déjà vu: naïve café, ﬁne ½ ²; Straße 12,5 — “quoted”…\u00a0end. " * 10,
]


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = {}
    for dep in deps:
        m = re.fullmatch(r"(spacy|datatrove)(\[[^\]]*\])?==([\w.]+)", dep.replace(" ", ""))
        if m:
            found[m.group(1)] = m.group(3)
    return found


def test_spacy_and_datatrove_are_pinned_and_installed_at_their_pins():
    pins = _pins()
    assert set(pins) == {"spacy", "datatrove"}, "pin spacy and datatrove exactly (==) in pyproject.toml"
    for name, pinned in pins.items():
        installed = metadata.version(name)
        assert installed == pinned, UPGRADE.format(name=name, installed=installed, pinned=pinned)


def test_word_split_gives_spacys_tokens():
    reference = SpaCyTokenizer("en")  # datatrove's own spaCy split
    split = SpacyWordSplit(rules_from_spacy(reference.tokenizer), reference.word_tokenize)
    assert split.usable, "spaCy's tokenizer no longer has the rules assay/curation/fast/spacy_rules.py reads"
    for i, text in enumerate(TEXTS):
        assert split(text) == reference.word_tokenize(text), f"text {i}: spaCy's tokens changed"


@pytest.mark.parametrize("name", [name for name, spec in FILTERS.items() if spec.fast])
def test_fast_filters_decide_as_datatroves(name):
    assert install_word_split("en")
    spec = FILTERS[name]
    outcomes = set()
    for kwargs in [{}, *spec.profiles.values()]:
        theirs, ours = spec.judge_class()(language="en", **kwargs), spec.judge_class("assay")(language="en", **kwargs)
        for i, text in enumerate(TEXTS):
            a, b = DtDocument(text=text, id="x"), DtDocument(text=text, id="x")
            expected = theirs.filter(a)
            assert (ours.filter(b), b.text) == (expected, a.text), f"{name} {kwargs} text {i}: datatrove's rule changed"
            outcomes.add(expected if isinstance(expected, bool) else expected[0])
    assert outcomes == {True, False}, "the fixed texts keep and drop"


def test_ngram_statistics_shingles_and_band_keys_equal_datatroves():
    assert install_word_split("en")
    tokenizer = SpaCyTokenizer("en")
    for text in TEXTS:
        words = tokenizer.word_tokenize(text)
        stats = NgramStats(words, [2, 3, 4], [5, 6, 7, 8, 9, 10])
        for n in (2, 3, 4):
            grams = get_n_grams(words, n)
            assert stats.top_duplicate_chars(n) == (find_top_duplicate(grams) if grams else None)
        for n in (5, 6, 7, 8, 9, 10):
            assert stats.duplicate_chars(n) == find_all_duplicate(words, n)
        assert our_simplify_text(text, TextNormConfig()) == simplify_text(text, TextNormConfig())

    cfg = MinHashConfig()
    signer = MinhashDedupSignature(tempfile.gettempdir(), language="en",
                                   config=MinhashConfig(n_grams=cfg.n_grams, num_buckets=cfg.bands,
                                                        hashes_per_bucket=cfg.rows, seed=cfg.seed))
    signer.word_tokenizer = SpaCyTokenizer("en")
    ours = MinHasher(cfg)
    for text in TEXTS:
        shingles = signer.get_shingles(text)
        expected = [] if shingles.size == 0 else [
            f"{band:03d}:{hashlib.blake2b(','.join(map(str, rows)).encode(), digest_size=12).hexdigest()}"
            for band, rows in enumerate(signer.get_signature(shingles))]
        assert ours.band_keys(text) == expected, "datatrove's MinHash signature changed"
