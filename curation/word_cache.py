"""Fast word tokenization for datatrove's filters, same tokens: spaCy's split cache, filled outside memory zones.

datatrove tokenizes inside a spaCy memory zone, so that a long run's vocabulary does not grow without bound. spaCy saves
no split made inside a zone; outside one it keeps at most 10,000 chunks per tokenizer, and within one text it stops
saving after the first special case ("don't", "e.g."). So every document pays spaCy's regex prefix / suffix / infix
search for every word again: about 3-4 microseconds a token, the larger part of the filters' and MinHash's time.

Here each whitespace-separated chunk a worker process has not seen yet is tokenized once, outside any zone, in small
batches (one special case then spoils little), with spaCy's cache limit raised to our own bound. Later tokenizations
of that chunk, in any filter, are a cache lookup (about 4x faster on the sample corpus). The cache holds only spaCy's
own splits, so the tokens, and with them every filter decision, are unchanged; tests compare with a fresh tokenizer.
`max_words` bounds the memory this keeps per language and process: about 700 bytes a word (spaCy lexemes and
strings, its cache entry, our record), so ~140 MB at the default.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: distinct words per language and worker process kept in spaCy's cache (FilterConfig.tokenizer_cache_words)
DEFAULT_MAX_WORDS = 200_000
_BATCH = 8  # chunks per warming call: larger batches lose more chunks to special cases, smaller ones cost calls


@dataclass
class _LanguageCache:
    tokenizer: object | None  # spaCy's rule-based Tokenizer, or None where warming does not apply
    seen: set[int] = field(default_factory=set)  # hashes of chunks already warmed (process-local, so salted is fine)
    last: str | None = None  # the last text warmed: the filters of one document share it


_CACHES: dict[str, _LanguageCache] = {}


def _cache_for(language: str) -> _LanguageCache:
    cache = _CACHES.get(language)
    if cache is None:
        from datatrove.utils.word_tokenizers import SpaCyTokenizer, load_word_tokenizer
        from spacy.tokenizer import Tokenizer

        spacy_tokenizer = None
        try:
            shared = load_word_tokenizer(language)  # the instance datatrove's filters use (lru-cached per language)
        except Exception:  # no tokenizer for this language here: the filter itself reports that, not the cache
            shared = None
        # ja splits its text by bytes first and zh/vi use segmenters: only spaCy's rule-based tokenizer has this cache
        if isinstance(shared, SpaCyTokenizer) and language != "ja":
            candidate = shared.tokenizer.tokenizer
            if type(candidate) is Tokenizer:
                spacy_tokenizer = candidate
        cache = _CACHES[language] = _LanguageCache(spacy_tokenizer)
    return cache


def warm_words(language: str, text: str, max_words: int = DEFAULT_MAX_WORDS) -> int:
    """Cache the splits of the chunks of `text` this process has not seen, up to `max_words` in all; returns how many.

    Call it outside any spaCy memory zone (our stages call it just before a datatrove filter runs).
    """
    if max_words <= 0 or not text:
        return 0
    cache = _cache_for(language)
    if cache.tokenizer is None or text is cache.last:
        return 0
    cache.last = text
    room = max_words - len(cache.seen)
    if room <= 0:
        return 0
    new: list[str] = []
    for chunk in dict.fromkeys(text.split()):  # first-appearance order: the same words are kept on every run
        key = hash(chunk)
        if key not in cache.seen:
            cache.seen.add(key)
            new.append(chunk)
            if len(new) >= room:
                break
    if not new:
        return 0
    tokenizer = cache.tokenizer
    tokenizer.max_cache_size = max(tokenizer.max_cache_size, max_words + 10_000)  # + whitespace runs and specials
    for start in range(0, len(new), _BATCH):
        try:
            tokenizer(" ".join(new[start:start + _BATCH]))
        except Exception:  # spaCy chokes on a few strings ("IS_ALPHA"); those chunks just stay uncached
            continue
    return len(new)


def cached_words(language: str) -> int:
    """How many chunks this process has warmed for `language` (for tests and memory accounting)."""
    cache = _CACHES.get(language)
    return len(cache.seen) if cache else 0


class _SharedSplit:
    """Wraps a datatrove word tokenizer's `word_tokenize` so the filters of one document (Gopher repetition,
    Gopher quality, FineWeb quality all split the same judged text) tokenize it once: the last text's words
    are kept and handed out as a fresh list. Same tokens, so every decision is unchanged."""

    def __init__(self, inner):
        self.inner = inner
        self.text: str | None = None
        self.words: tuple[str, ...] = ()

    def __call__(self, text):
        if text is not self.text and text != self.text:
            self.words = tuple(self.inner(text))
            self.text = text
        return list(self.words)


def share_word_splits(language: str) -> bool:
    """Install the one-document split cache on the tokenizer datatrove's filters use for `language`;
    True once installed (idempotent)."""
    try:
        from datatrove.utils.word_tokenizers import load_word_tokenizer

        tokenizer = load_word_tokenizer(language)
    except Exception:  # no tokenizer here: the filter reports that itself
        return False
    if not isinstance(tokenizer.__dict__.get("word_tokenize"), _SharedSplit):
        tokenizer.word_tokenize = _SharedSplit(tokenizer.word_tokenize)
    return True
