"""datatrove's Gopher repetition, Gopher quality and C4 quality decisions with statistics assay computes faster.

The "assay" filter profile runs these; the "fineweb" profile calls datatrove's classes themselves. Each class here
subclasses datatrove's filter, so it takes the same arguments with the same defaults, and overrides only `filter`,
following datatrove's code rule by rule, in the same order, with the same reasons. What differs is how a
statistic is computed, never its value:
- words come from datatrove's `split_into_words`, as in datatrove (assay's split is installed under it:
  assay/curation/fast/word_cache.py);
- Gopher repetition's n-gram statistics come from assay/curation/fast/ngram_stats.py (hashes first, strings only for
  n-grams that may repeat);
- Gopher quality checks each distinct word once, with str methods that decide as datatrove's per-character loops;
- C4 quality counts sentences only when fewer lines are kept than the sentences it asks for: every kept line holds
  at least one sentence, so with enough lines the count is not needed; when it is, assay's split counts what
  spaCy's sentencizer would (assay/curation/fast/spacy_words.py), datatrove's `split_into_sentences` where it cannot.
Tests run datatrove's filters and these over every page of the quality and sample corpora and compare decisions,
reasons and the text C4 keeps.
"""
from __future__ import annotations

from collections import Counter

from datatrove.pipeline.filters.c4_filters import (
    CITATION_REGEX,
    ELLIPSIS,
    END_PUNCTUATION,
    POLICY_SUBSTRINGS,
    C4QualityFilter,
)
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter, find_duplicates
from datatrove.utils.text import PUNCTUATION_SET, split_into_sentences, split_into_words

from assay.curation.fast.ngram_stats import NgramStats
from assay.curation.fast.word_cache import sentence_counter

_PUNCTUATION_CHARS = "".join(sorted(PUNCTUATION_SET))  # every member is one character


class FastGopherRepetition(GopherRepetitionFilter):
    def filter(self, doc) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"

        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"

        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        stats = NgramStats(split_into_words(text, self.language), [n for n, _ in self.top_n_grams],
                           [n for n, _ in self.dup_n_grams])
        for n, n_frac in self.top_n_grams:
            top_char_length = stats.top_duplicate_chars(n)
            if top_char_length is None:  # no n-gram at all
                continue
            if top_char_length / len(text) > n_frac:
                return False, f"top_{n}_gram"

        for n, n_frac in self.dup_n_grams:
            if stats.duplicate_chars(n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


def _has_letter(word: str) -> bool:
    """datatrove's `any(c.isalpha() for c in word)`; in ASCII exactly the letters change with case."""
    if word.isascii():
        return word.lower() != word.upper()
    return any(c.isalpha() for c in word)


class FastGopherQuality(GopherQualityFilter):
    def filter(self, doc) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        counts = Counter(words)

        # a word with a character outside PUNCTUATION_SET: stripping those characters leaves something
        non_symbol = [(w, c) for w, c in counts.items() if w.strip(_PUNCTUATION_CHARS)]
        n_non_symbol_words_words = sum(c for _, c in non_symbol)

        if self.min_doc_words and n_non_symbol_words_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol_words_words > self.max_doc_words:
            return False, "gopher_long_doc"

        # the mean of whole numbers: their exact sum over their count, as numpy's float64 mean gives it
        avg_n_words = (sum(len(w) * c for w, c in non_symbol) / n_non_symbol_words_words
                       if n_non_symbol_words_words else float("nan"))
        if self.min_avg_word_length and avg_n_words < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_n_words > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"

        lines = text.splitlines()
        if (
            self.max_bullet_lines_ratio
            and sum(s.lstrip().startswith("•") or s.lstrip().startswith("-") for s in lines) / len(lines)
            > self.max_bullet_lines_ratio
        ):
            return False, "gopher_too_many_bullets"
        if (
            self.max_ellipsis_lines_ratio
            and sum(s.rstrip().endswith("...") or s.rstrip().endswith("…") for s in lines) / len(lines)
            > self.max_ellipsis_lines_ratio
        ):
            return False, "gopher_too_many_end_ellipsis"

        if (
            self.max_non_alpha_words_ratio
            and sum(c for w, c in counts.items() if _has_letter(w)) / n_words < self.max_non_alpha_words_ratio
        ):
            return False, "gopher_below_alpha_threshold"

        if self.min_stop_words and len(self.stop_words.intersection(counts)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


class FastC4Quality(C4QualityFilter):
    def filter(self, doc) -> bool | tuple[bool, str]:
        lines = doc.text.splitlines() if self.split_paragraph else split_into_sentences(doc.text, self.language)

        kept_lines = []
        for line in lines:
            line = line.strip()
            words = line.split()
            if self.max_word_length != -1 and any(len(word) > self.max_word_length for word in words):
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                continue
            if len(words) < self.min_words_per_line:
                continue
            line_l = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in line_l:
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                continue
            kept_lines.append(line)

        # datatrove adds each kept line's sentence count (at least 1: a split always gives one part), or 1 per line
        # without split_paragraph; the count only matters below min_num_sentences
        if self.min_num_sentences != -1 and len(kept_lines) < self.min_num_sentences:
            if self.split_paragraph:
                num_sentences = sum(_sentences(line, self.language) for line in kept_lines)
            else:
                num_sentences = len(kept_lines)
            if num_sentences < self.min_num_sentences:
                return False, "too_few_sentences"

        doc.text = ("\n" if self.split_paragraph else " ").join(kept_lines).strip()
        return True


def _sentences(line: str, language: str) -> int:
    """len(datatrove's split_into_sentences(line)), from assay's split where it can tell (no spaCy needed)."""
    count = sentence_counter(language)
    found = count(line) if count is not None else None
    return found if found is not None else len(split_into_sentences(line, language))
