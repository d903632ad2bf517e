"""assay's statistics for datatrove's filters and MinHash (assay/curation/fast/filters.py,
assay/curation/fast/ngram_stats.py,
assay/curation/fast/shingles.py) give datatrove's decisions and numbers: the same keep/drop, reason and kept text as
datatrove's filter classes on every page of the held-out quality corpus and the sample corpus, the same n-gram
statistics as datatrove's functions, and the same MinHash band keys as datatrove's own signature code."""
import functools
import hashlib
import random
import tempfile

import pytest
from corpus_views import eval_views, sample_views
from datatrove.data import Document as DtDocument
from datatrove.pipeline import filters as dt
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from datatrove.utils.text import TextNormConfig, simplify_text, split_into_words
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from assay.curation.dedup import MinHashConfig, MinHasher
from assay.curation.fast.ngram_stats import NgramStats
from assay.curation.fast.shingles import simplify_text as our_simplify_text
from assay.curation.fast.word_cache import install_word_split
from assay.curation.filters import FILTERS, FilterConfig, build_filter_stages, profile_filters

DATATROVE = {"gopher_repetition": dt.GopherRepetitionFilter, "gopher_quality": dt.GopherQualityFilter,
             "c4_quality": dt.C4QualityFilter}
#: assay's classes, from the filter registry
FAST_CLASSES = {name: spec.judge_class("assay") for name, spec in FILTERS.items() if spec.fast}


@pytest.fixture(scope="module", autouse=True)
def _datatrove_splits_each_line_once():
    """datatrove's C4 splits every line it keeps into sentences with spaCy, most of this module's time; the split
    is a pure function of (line, language) and both profiles' tests ask it for the same lines, so datatrove's own
    split runs once per line (memoised, not replaced)."""
    import datatrove.pipeline.filters.c4_filters as c4

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(c4, "split_into_sentences", functools.lru_cache(maxsize=None)(c4.split_into_sentences))
        yield


def verdicts(filter_, text: str):
    doc = DtDocument(text=text, id="x")
    return filter_.filter(doc), doc.text


def _compare(names, kwargs_of, texts) -> set:
    outcomes = set()
    for name in names:
        kwargs = kwargs_of(name)
        theirs, ours = DATATROVE[name](language="en", **kwargs), FAST_CLASSES[name](language="en", **kwargs)
        for i, text in enumerate(texts):
            expected = verdicts(theirs, text)
            assert verdicts(ours, text) == expected, (name, i)
            outcomes.add((name, str(expected[0])))
    return outcomes


@pytest.mark.parametrize("profile", ["assay", "fineweb"])
def test_filters_decide_as_datatrove_on_every_eval_page(profile):
    """Each profile's arguments, both views of every page of the held-out corpus: the same keep or drop, reason
    and kept text. Both sides split words with assay's split, whose tokens equal spaCy's on these pages
    (tests/test_spacy_words.py); datatrove's C4 counts sentences with spaCy itself."""
    assert install_word_split("en")
    outcomes = _compare(FAST_CLASSES, lambda name: profile_filters(profile)[name], eval_views())
    assert len(outcomes) > 12, "the pages exercise every filter's outcomes"
    assert len({(name, kept == "True") for name, kept in outcomes}) == 2 * len(FAST_CLASSES)


def test_c4_decides_as_datatrove_with_its_defaults_on_sample_pages():
    """datatrove's defaults: C4 keeps only lines with terminal punctuation and drops pages with a curly bracket."""
    assert install_word_split("en")
    outcomes = _compare(["c4_quality"], lambda name: {}, sample_views()[::2])
    assert {kept == "True" for _, kept in outcomes} == {True, False}


def test_the_assay_profile_runs_assays_classes_and_the_fineweb_profile_datatroves():
    assert set(FAST_CLASSES) == set(DATATROVE)
    assert all(issubclass(FAST_CLASSES[name], DATATROVE[name]) for name in DATATROVE)
    cases = (("assay", "", "assay.curation.fast.filters"), ("fineweb", "", "datatrove.pipeline.filters"),
             ("fineweb", "assay", "assay.curation.fast.filters"), ("assay", "datatrove", "datatrove.pipeline.filters"))
    for profile, statistics, expected in cases:
        cfg = FilterConfig(profile=profile, statistics=statistics, stats=False)
        stages = {s.name: s for s in build_filter_stages(cfg)}
        for name in FAST_CLASSES:
            assert stages[name].filter_for("en").__class__.__module__.startswith(expected), (profile, statistics)
        assert stages["fineweb_quality"].filter_for("en").__class__ is dt.FineWebQualityFilter
    with pytest.raises(ValueError, match="filters.statistics"):
        FilterConfig(statistics="fast")


def test_ngram_statistics_equal_datatrove_functions_on_every_page():
    """Gopher repetition's n (top 2-4, duplicated 5-10) on every view of every held-out page; every n from 1 to 11
    on made-up word lists (among them different words with the same "".join) and on a few pages."""
    assert install_word_split("en")
    pages = [split_into_words(text, "en") for text in eval_views()]
    for i, words in enumerate(pages):
        stats = NgramStats(words, [2, 3, 4], [5, 6, 7, 8, 9, 10])
        for n in (2, 3, 4):
            grams = get_n_grams(words, n)
            assert stats.top_duplicate_chars(n) == (find_top_duplicate(grams) if grams else None), (i, n)
        for n in (5, 6, 7, 8, 9, 10):
            assert stats.duplicate_chars(n) == find_all_duplicate(words, n), (i, n)
    made_up = [["ab", "c", "x", "a", "bc", "x", "abc", "x"] * 3, ["a", "b"] * 40, ["x"], [],
               ["the", "cat", "the", "cat", "sat", "the", "cat"]]
    ns = list(range(1, 12))
    for i, words in enumerate(made_up + pages[::100]):
        stats = NgramStats(words, ns, ns)
        for n in ns:
            grams = get_n_grams(words, n)
            assert stats.top_duplicate_chars(n) == (find_top_duplicate(grams) if grams else None), (i, n)
            assert stats.duplicate_chars(n) == find_all_duplicate(words, n), (i, n)


def test_ngram_statistics_stay_exact_when_hashes_collide():
    """With 101 hash values nearly every n-gram shares its hash with others: only the strings decide."""
    assert install_word_split("en")
    rng = random.Random(5)
    pages = rng.sample([split_into_words(text, "en") for text in eval_views()], 60)
    for i, words in enumerate(pages):
        stats = NgramStats(words, [2, 3, 4], [5, 6, 7, 8, 9, 10], mod=101)
        for n in (2, 3, 4):
            assert stats.top_duplicate_chars(n) == find_top_duplicate(get_n_grams(words, n)), (i, n)
        for n in (5, 6, 7, 8, 9, 10):
            assert stats.duplicate_chars(n) == find_all_duplicate(words, n), (i, n)


def test_simplify_text_equals_datatrove():
    texts = list(eval_views()) + ["Ça déjà vu: naïve café, ﬁne ½ ²; Straße ١٢٣٫٤ 12,5 — “quoted”…\u00a0\u2003end",
                                  "e\u0301 a\u0308\u0323 \u0915\u093f", "", "   ", "ＡＢＣ１２３"]
    for config in (TextNormConfig(), TextNormConfig(norm_weekdays=True, norm_monthnames=True, lowercase=False)):
        for text in texts:
            assert our_simplify_text(text, config) == simplify_text(text, config), text[:80]


def _datatrove_band_keys(signer, text: str) -> list[str]:
    """The band keys as MinHasher computed them before (datatrove's get_shingles and get_signature)."""
    shingles = signer.get_shingles(text)
    if shingles.size == 0:
        return []
    return [f"{band:03d}:{hashlib.blake2b(','.join(map(str, rows)).encode(), digest_size=12).hexdigest()}"
            for band, rows in enumerate(signer.get_signature(shingles))]


@pytest.mark.parametrize("seed", [1, 7])
def test_minhash_band_keys_equal_datatrove_on_every_page(seed):
    cfg = MinHashConfig(seed=seed)
    ours = MinHasher(cfg)
    signer = MinhashDedupSignature(tempfile.gettempdir(), language="en",
                                   config=MinhashConfig(n_grams=cfg.n_grams, num_buckets=cfg.bands,
                                                        hashes_per_bucket=cfg.rows, seed=seed))
    signer.word_tokenizer = SpaCyTokenizer("en")  # a fresh datatrove tokenizer: its own spaCy split
    texts = eval_views()[::2] if seed == 1 else eval_views()[1::2]
    nonempty = 0
    for i, text in enumerate(texts + ("", "too short", "one two three four five")):
        expected = _datatrove_band_keys(signer, text)
        assert ours.band_keys(text) == expected, i
        nonempty += bool(expected)
    assert nonempty > len(texts) // 2
