"""Heuristic quality filters: datatrove's Gopher, C4 and FineWeb implementations, each its own stage.

We call datatrove's filters rather than re-implementing them, so decisions match the published recipes
exactly. Each wrapper records which rule fired as the ledger reason. datatrove's per-document statistics
(DocStats, WordStats, LineStats) become signal columns so thresholds can be studied with `assay sql`.
"""
from __future__ import annotations

import importlib
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyarrow as pa

from assay.curation.document import TEXT_VIEWS, Document, Rejection, TextView
from assay.curation.fast.word_cache import DEFAULT_MAX_WORDS, install_word_split
from assay.curation.stage import Stage


@dataclass(frozen=True)
class FilterSpec:
    """One filter of the `filters` stage, registered once in FILTERS: the name (config key, funnel stage and
    ledger stage), the class that judges a page, and what each profile passes it."""

    name: str
    #: "module:Class" that judges a page: an assay page filter (a curation Stage) or a datatrove filter (run
    #: through DatatroveFilter)
    judge: str
    #: "module:Class" of assay's subclass of the datatrove filter with faster statistics and the same decisions
    #: (statistics = "assay"; assay/curation/fast/filters.py); "" where datatrove's class runs either way
    fast: str = ""
    #: profile -> the filter's arguments there; a profile runs the filters that name it, in FILTERS' order
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: arguments that name local files (word lists, models): uploaded for remote workers (assay/pipelines/curate/job.py)
    files: tuple[str, ...] = ()

    @property
    def is_datatrove(self) -> bool:
        return self.judge.startswith("datatrove.")

    def judge_class(self, statistics: str = "datatrove") -> type:
        """The class that judges a page; with statistics "assay", assay's faster subclass where there is one."""
        module, _, name = (self.fast if statistics == "assay" and self.fast else self.judge).partition(":")
        return getattr(importlib.import_module(module), name)


#: Every per-document filter, in the order the profiles run them. The two profiles:
#: - "fineweb": FineWeb's filters as datatrove runs them, on the whole extracted text, datatrove's own classes.
#:   Decisions equal datatrove's (tests/test_curation_stages.py).
#: - "assay" (the default): the same datatrove filters judging the prose view (code blocks and tables left out:
#:   their repeated n-grams, symbol-heavy lines and unterminated lines are what documentation is made of) with
#:   arguments chosen on the training split of the quality corpus: for each filter the strictest that keep about
#:   98% of its English edu pages (scripts/tune_filter_thresholds.py; the measured table and each choice are in
#:   docs/quality.md, "Why each default", and nowhere else; the comment above each entry says why it differs).
#:   It runs assay's own page filters first (assay/curation/page_filters.py): release notes by their title, and
#:   link-heavy pages (menus, indexes, landing pages), which datatrove has no filter for. Gopher repetition,
#:   Gopher quality and C4 compute their statistics with assay's faster code (assay/curation/fast/filters.py), which
#:   decides as datatrove's classes do on every page of the quality and sample corpora (tests/test_fast_filters.py).
FILTERS: dict[str, FilterSpec] = {spec.name: spec for spec in (
    FilterSpec("release_notes", "assay.curation.page_filters:ReleaseNotesFilter", profiles={"assay": {}}),
    # link text share of the main content, or of the whole page when the main text is under 300 words
    # (assay/curation/page_filters.py)
    FilterSpec("link_density", "assay.curation.page_filters:LinkDensityFilter",
               profiles={"assay": {"max_link_share": 0.4, "min_words": 300}}),
    # reference pages repeat signatures, option tables and "Parameters:/Returns:" lines: twice datatrove's
    # n-gram fractions and 0.4 duplicated lines
    FilterSpec("gopher_repetition", "datatrove.pipeline.filters:GopherRepetitionFilter",
               "assay.curation.fast.filters:FastGopherRepetition",
               profiles={"fineweb": {},
                         "assay": {"dup_line_frac": 0.4, "dup_para_frac": 0.4, "dup_line_char_frac": 0.4 * 2 / 3,
                                   "dup_para_char_frac": 0.4 * 2 / 3,
                                   "dup_n_grams": ((5, 0.3), (6, 0.28), (7, 0.26), (8, 0.24), (9, 0.22), (10, 0.2)),
                                   "top_n_grams": ((2, 0.4), (3, 0.36), (4, 0.32))}}),
    # Gopher's "80% of words contain a letter" rule counts words split on whitespace; datatrove's spaCy tokenizer
    # also counts every punctuation mark as a word, so technical prose scores ~0.75 there: 0.7
    FilterSpec("gopher_quality", "datatrove.pipeline.filters:GopherQualityFilter",
               "assay.curation.fast.filters:FastGopherQuality",
               profiles={"fineweb": {}, "assay": {"max_non_alpha_words_ratio": 0.7}}),
    # C4's curly-bracket rule drops every page that shows code, which an educational corpus wants: off. Its
    # terminal-punctuation line rule is off in both profiles, as FineWeb ran C4
    FilterSpec("c4_quality", "datatrove.pipeline.filters:C4QualityFilter", "assay.curation.fast.filters:FastC4Quality",
               profiles={"fineweb": {"filter_no_terminal_punct": False},
                         "assay": {"filter_no_terminal_punct": False, "filter_curly_bracket": False}}),
    # datatrove's char_duplicates_ratio 0.01 drops a page whose repeated lines ("Note", "Example", "Default:
    # None") add up to 1% of its characters; 0.1
    FilterSpec("fineweb_quality", "datatrove.pipeline.filters:FineWebQualityFilter",
               profiles={"fineweb": {}, "assay": {"char_duplicates_ratio": 0.1}}),
)}

#: the filter profiles a config may name
FilterProfile = Literal["assay", "fineweb"]
#: whose code computes the statistics of datatrove's filters: assay's faster classes, or datatrove's own
Statistics = Literal["assay", "datatrove"]
#: what each profile judges (the text view) and whose code computes datatrove's statistics
PROFILES: dict[str, dict[str, str]] = {
    "fineweb": {"view": "text", "statistics": "datatrove"},
    "assay": {"view": "prose", "statistics": "assay"},
}
DEFAULT_PROFILE = "assay"


def profile_filters(profile: str) -> dict[str, dict[str, Any]]:
    """A profile's filters in the order they run, with its arguments for each."""
    return {name: dict(spec.profiles[profile]) for name, spec in FILTERS.items() if profile in spec.profiles}


def filter_spec(name: str) -> FilterSpec:
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose from {sorted(FILTERS)}")
    return FILTERS[name]


@dataclass
class FilterConfig:
    """The `filters` stage: which filters run, with which arguments, on which text view."""

    profile: FilterProfile = DEFAULT_PROFILE  # picks the filters, their arguments and the text view (PROFILES)
    enabled: list[str] = field(default_factory=list)  # the filters in the order they run; empty: the profile's
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # filter -> arguments over the profile's
    view: TextView | Literal[""] = ""  # "prose" or "text"; "": the profile's
    #: "assay" (assay's faster statistics where it has them, same decisions) or "datatrove" (datatrove's classes
    #: throughout); "": the profile's
    statistics: Statistics | Literal[""] = ""
    stats: bool = True  # compute datatrove's doc/word/line statistics as signal columns
    #: whitespace chunks per language and worker process whose spaCy tokens are remembered by assay's word split
    #: (spaCy's rules without spaCy's per-token objects: same tokens, much faster; assay/curation/fast/word_cache.py);
    #: 0 leaves datatrove's own split
    tokenizer_cache_words: int = DEFAULT_MAX_WORDS

    def __post_init__(self) -> None:
        if self.tokenizer_cache_words < 0:
            raise ValueError(f"filters.tokenizer_cache_words must be >= 0, got {self.tokenizer_cache_words}")
        if self.profile not in PROFILES:
            raise ValueError(f"filters.profile must be one of {sorted(PROFILES)}, got {self.profile!r}")
        if self.view and self.view not in TEXT_VIEWS:
            raise ValueError(f"filters.view must be one of {TEXT_VIEWS} (or empty for the profile's), got "
                             f"{self.view!r}")
        if self.statistics and self.statistics not in get_args(Statistics):
            raise ValueError(f"filters.statistics must be 'assay' or 'datatrove' (or empty for the profile's), "
                             f"got {self.statistics!r}")
        if not self.enabled:
            self.enabled = list(profile_filters(self.profile))

    @property
    def text_view(self) -> str:
        return self.view or PROFILES[self.profile]["view"]

    @property
    def statistics_from(self) -> str:
        return self.statistics or PROFILES[self.profile]["statistics"]

    def kwargs_for(self, name: str) -> dict[str, Any]:
        merged = dict(FILTERS[name].profiles.get(self.profile, {})) if name in FILTERS else {}
        merged.update(self.params.get(name, {}))
        return merged


def tokenizer_language(lang: str | None) -> str:
    """The language datatrove's word tokenizers should use for a document, falling back to English."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    if not lang:
        return "en"
    try:
        load_word_tokenizer(lang)
        return lang
    except Exception:  # no tokenizer for that language here (e.g. Japanese without SudachiPy)
        return "en"


class DatatroveFilter(Stage):
    """One datatrove filter as a stage; one filter instance per document language. `statistics` "assay" runs
    assay's subclass of the filter where there is one (same decisions, faster statistics)."""

    def __init__(self, name: str, params: dict[str, Any] | None = None,
                 tokenizer_cache_words: int = DEFAULT_MAX_WORDS, view: str = "text", statistics: str = "datatrove"):
        if statistics not in get_args(Statistics):
            raise ValueError(f"statistics must be 'datatrove' or 'assay', got {statistics!r}")
        spec = filter_spec(name)
        if not spec.is_datatrove:
            raise ValueError(f"{name!r} is assay's own page filter, not a datatrove filter (use filter_stage)")
        self.name = name
        self.params = dict(params or {})
        self.tokenizer_cache_words = tokenizer_cache_words
        self.view = view
        self._cls = spec.judge_class(statistics)
        self._by_lang: dict[str, Any] = {}
        reference = next(c.__name__ for c in self._cls.__mro__ if c.__module__.startswith("datatrove."))
        ours = "" if reference == self._cls.__name__ else " (assay's statistics)"
        self._detail = f"datatrove {reference}{ours}"  # the ledger's detail: whose decision it was

    def setup(self) -> None:
        self.filter_for("en")  # the usual language, before the first document

    def filter_for(self, lang: str | None):
        """This worker's filter for a document language; its word split is installed when it is first built."""
        key = tokenizer_language(lang)
        if key not in self._by_lang:
            install_word_split(key, self.tokenizer_cache_words)
            self._by_lang[key] = self._cls(language=key, **self.params)
        return self._by_lang[key]

    def process(self, doc: Document) -> Document | Rejection:
        from datatrove.data import Document as DtDocument

        judged = doc.view(self.view)
        dt_doc = DtDocument(text=judged, id=doc.id, metadata={})
        dt_filter = self.filter_for(doc.meta.get("language"))
        verdict = dt_filter.filter(dt_doc)
        ok, reason = (verdict, "") if isinstance(verdict, bool) else (verdict[0], verdict[1])
        if not ok:
            view = "" if judged is doc.text else " on the prose view"
            return Rejection.of(doc, self.name, reason or "filtered", detail=self._detail + view)
        if dt_doc.text != judged:  # C4 drops lines (citations, javascript, policy lines) and keeps the rest
            return _drop_same_lines(doc, judged, dt_doc.text)
        return doc


def _drop_same_lines(doc: Document, judged: str, kept: str) -> Document:
    """Apply a filter's line removals, found on the judged view, to the whole text (and to the prose view)."""
    if judged is doc.text:
        return doc.with_text(kept)
    before, after = Counter(judged.split("\n")), Counter(kept.split("\n"))
    removed = before - after
    if not removed:
        return doc
    lines = []
    for line in doc.text.split("\n"):
        if removed.get(line, 0) > 0:
            removed[line] -= 1
            continue
        lines.append(line)
    return doc.with_text("\n".join(lines), prose=kept)


class TextStatistics(Stage):
    """datatrove's per-document statistics as signal columns (no filtering)."""

    name = "stats"

    def __init__(self, tokenizer_cache_words: int = DEFAULT_MAX_WORDS, view: str = "text"):
        self.tokenizer_cache_words = tokenizer_cache_words
        self.view = view
        self._extractors = None

    def setup(self) -> None:
        if self._extractors is None:
            from datatrove.pipeline.stats import DocStats, LineStats, WordStats

            install_word_split("en", self.tokenizer_cache_words)  # WordStats tokenizes as English
            scratch = tempfile.gettempdir()  # stats objects want a folder; extract_stats never writes to it
            self._extractors = [DocStats(scratch), WordStats(scratch), LineStats(scratch)]

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {k: (pa.int64() if k in _INT_STATS else pa.float64()) for k in STAT_KEYS}

    def process(self, doc: Document) -> Document | Rejection:
        self.setup()
        from datatrove.data import Document as DtDocument

        judged = doc.view(self.view)
        dt_doc = DtDocument(text=judged, id=doc.id, metadata={})
        signals: dict[str, Any] = {}
        for extractor in self._extractors:
            for key, value in extractor.extract_stats(dt_doc).items():
                signals[key] = int(value) if key in _INT_STATS else round(float(value), 6)
        return doc.with_meta(**signals)


_INT_STATS = {"length", "n_words", "n_lines"}
STAT_KEYS = [
    "length", "white_space_ratio", "non_alpha_digit_ratio", "digit_ratio", "uppercase_ratio", "elipsis_ratio",
    "punctuation_ratio", "n_words", "avg_word_length", "avg_words_per_line", "short_word_ratio_3",
    "long_word_ratio_7", "type_token_ratio", "uppercase_word_ratio", "capitalized_word_ratio", "stop_word_ratio",
    "n_lines", "avg_line_length", "short_line_ratio_chars_10", "short_line_ratio_chars_30",
    "long_line_ratio_chars_2000", "long_line_ratio_chars_10000", "lines_ending_with_terminal_mark_ratio",
    "bullet_point_lines_ratio", "line_duplicates", "line_char_duplicates",
]


def build_filter_stages(cfg: FilterConfig) -> list[Stage]:
    view = cfg.text_view
    stages: list[Stage] = [TextStatistics(cfg.tokenizer_cache_words, view)] if cfg.stats else []
    return stages + [filter_stage(name, cfg.kwargs_for(name), view, cfg.tokenizer_cache_words, cfg.statistics_from)
                     for name in cfg.enabled]


def filter_stage(name: str, params: dict[str, Any], view: str = "text",
                 tokenizer_cache_words: int = DEFAULT_MAX_WORDS, statistics: str = "datatrove") -> Stage:
    """One filter by name: one of assay's page filters, or a datatrove filter judging `view` (with assay's
    statistics where `statistics` is "assay")."""
    spec = filter_spec(name)
    if not spec.is_datatrove:
        return spec.judge_class()(**params)
    return DatatroveFilter(name, params, tokenizer_cache_words, view, statistics)
