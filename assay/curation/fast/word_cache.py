"""Fast word split for datatrove's filters and MinHash, same tokens, installed where datatrove looks for it.

datatrove keeps one word tokenizer per language (`load_word_tokenizer`, lru-cached) and every filter, its
statistics and MinHash call its `word_tokenize`. Here that method becomes, on the instance:
- assay/curation/fast/spacy_words.py's split (spaCy's own rules run without building a spaCy Doc or importing spaCy,
chunk
  tokens remembered up to `max_words` per language and process; about 250 bytes a chunk, so ~50 MB at the
  default), where the tokenizer is a plain `spacy.blank` one; datatrove's own split elsewhere;
- shared by the filters of one document: Gopher repetition, Gopher quality and FineWeb quality all split the same
  judged text, so its words are kept and handed out as a fresh list to the next filter.
So datatrove's own filter code runs unchanged on the same words; only the work of splitting is saved.
"""
from __future__ import annotations

#: chunks per language and worker process whose tokens are remembered (FilterConfig.tokenizer_cache_words)
DEFAULT_MAX_WORDS = 200_000


class _SharedSplit:
    """Wraps a word split so the filters of one document tokenize it once: the last text's words are kept and
    handed out as a fresh list. Same tokens, so every decision is unchanged."""

    def __init__(self, inner):
        self.inner = inner
        self.text: str | None = None
        self.words: tuple[str, ...] = ()

    def __call__(self, text):
        if text is not self.text and text != self.text:
            self.words = tuple(self.inner(text))
            self.text = text
        return list(self.words)


def _datatrove_tokenizer(language: str):
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    try:
        return load_word_tokenizer(language)
    except Exception:  # no tokenizer for this language here: the filter itself reports that
        return None


def _fast_split(tokenizer, original, max_words: int):
    """assay/curation/fast/spacy_words.py's split for a plain `spacy.blank` tokenizer of datatrove's, from its rules
    (assay/curation/fast/spacy_rules.py: no spaCy import once they are saved); else None (ja splits its text by bytes
    first, zh and vi use segmenters)."""
    from datatrove.utils.word_tokenizers import SpaCyTokenizer

    from assay.curation.fast.spacy_rules import datatrove_rules
    from assay.curation.fast.spacy_words import SpacyWordSplit

    if type(tokenizer) is not SpaCyTokenizer or tokenizer.config is not None:
        return None
    rules = datatrove_rules(tokenizer.language)
    if rules is None:
        return None
    split = SpacyWordSplit(rules, original, max_words)
    return split if split.usable else None


def install_word_split(language: str, max_words: int = DEFAULT_MAX_WORDS) -> bool:
    """Make datatrove's tokenizer for `language` split words as above (remembering up to `max_words` chunks;
    0 puts datatrove's own method back); True when installed. Idempotent; datatrove keeps one tokenizer per
    language and process, so a stage calls it once per language when it sets up (not per document)."""
    tokenizer = _datatrove_tokenizer(language)
    if tokenizer is None:
        return False
    current = tokenizer.__dict__.get("word_tokenize")
    if max_words <= 0:
        if isinstance(current, _SharedSplit):
            del tokenizer.word_tokenize
        return False
    if isinstance(current, _SharedSplit):
        if hasattr(current.inner, "max_words"):
            current.inner.max_words = max_words
        return True
    original = tokenizer.word_tokenize
    fast = _fast_split(tokenizer, original, max_words)
    tokenizer.word_tokenize = _SharedSplit(fast or original)
    return True


def remembered_chunks(language: str) -> int:
    """How many chunks this process remembers the tokens of for `language` (for tests and memory accounting)."""
    tokenizer = _datatrove_tokenizer(language)
    current = tokenizer.__dict__.get("word_tokenize") if tokenizer is not None else None
    return len(current.inner.memo) if isinstance(current, _SharedSplit) and hasattr(current.inner, "memo") else 0


def sentence_counter(language: str):
    """The installed split's `sentence_count` for `language` (see assay/curation/fast/spacy_words.py), or None."""
    tokenizer = _datatrove_tokenizer(language)
    current = tokenizer.__dict__.get("word_tokenize") if tokenizer is not None else None
    inner = getattr(current, "inner", None)
    return getattr(inner, "sentence_count", None)
