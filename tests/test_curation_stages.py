"""Per-document stages on real text: datatrove filter parity, fastText language ID, PII masking, extraction."""
import glob
import os

import pytest
from datatrove.data import Document as DtDocument
from datatrove.pipeline import filters as dt

from assay.curation.document import Document, Rejection
from assay.curation.extract import ExtractText
from assay.curation.filters import (
    FILTERS,
    PROFILES,
    DatatroveFilter,
    FilterConfig,
    TextStatistics,
    build_filter_stages,
    profile_filters,
)
from assay.curation.langid import IdentifyLanguage, LangIdConfig, LanguageIdentifier
from assay.curation.pii import MaskPII
from assay.curation.stage import Stage


def real_texts() -> list[str]:
    """Real prose and junk from files on this machine: Python's own docs, licences, source code."""
    texts = []
    stdlib = os.path.dirname(os.__file__)
    for name in ("LICENSE.txt", "this.py", "antigravity.py", "json/__init__.py", "argparse.py", "email/message.py"):
        path = os.path.join(stdlib, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                body = fh.read()
            texts += [body[i: i + 4000] for i in range(0, min(len(body), 40000), 4000)]
    for path in sorted(glob.glob("/usr/share/common-licenses/*"))[:6]:
        with open(path, encoding="utf-8", errors="replace") as fh:
            texts.append(fh.read()[:6000])
    texts += ["", "short text.", "buy now!!! " * 200, "- item\n" * 80, "word " * 500]
    return texts


CLASSES = {"gopher_repetition": dt.GopherRepetitionFilter, "gopher_quality": dt.GopherQualityFilter,
           "c4_quality": dt.C4QualityFilter, "fineweb_quality": dt.FineWebQualityFilter}


def test_both_profiles_run_all_four_datatrove_filters_in_fineweb_order():
    for profile in PROFILES:
        assert [n for n in profile_filters(profile) if n in CLASSES] == list(CLASSES)
    assert {n: FILTERS[n].judge_class() for n in CLASSES} == CLASSES


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", list(CLASSES))
def test_filter_decisions_equal_datatrove_called_directly(name, profile):
    """On the text view, each profile's filter decides exactly as datatrove's filter with the same arguments (the
    assay profile with assay's statistics, the fineweb profile with datatrove's classes); the fineweb profile's
    arguments are datatrove's defaults (C4 without its terminal-punctuation rule)."""
    cfg = FilterConfig(profile=profile)
    assert cfg.kwargs_for(name) == profile_filters(profile)[name]
    if profile == "fineweb":
        assert cfg.kwargs_for(name) == ({"filter_no_terminal_punct": False} if name == "c4_quality" else {})
        assert cfg.text_view == "text"
    ours = DatatroveFilter(name, cfg.kwargs_for(name), statistics=PROFILES[profile]["statistics"])
    theirs = CLASSES[name](**cfg.kwargs_for(name))
    texts = real_texts()
    assert len(texts) > 20
    decisions = []
    for i, text in enumerate(texts):
        doc = Document(id=str(i), text=text, meta={"language": "en"})
        dt_doc = DtDocument(text=text, id=str(i))
        verdict = theirs.filter(dt_doc)
        expected_ok = verdict if isinstance(verdict, bool) else verdict[0]
        out = ours.process(doc)
        assert isinstance(out, Document) == expected_ok, (name, i)
        if isinstance(out, Rejection):
            assert out.reason == verdict[1] and out.stage == name
        else:
            assert out.text == dt_doc.text  # C4 may drop lines: we keep exactly what datatrove kept
        decisions.append(expected_ok)
    assert True in decisions and False in decisions, "the texts should exercise both outcomes"


def test_filter_thresholds_are_configurable():
    text = " ".join(["alpha beta gamma delta the and of to"] * 10)  # 80 words
    strict = build_filter_stages(FilterConfig(enabled=["gopher_quality"],
                                              params={"gopher_quality": {"min_doc_words": 100}}, stats=False))
    loose = build_filter_stages(FilterConfig(enabled=["gopher_quality"],
                                             params={"gopher_quality": {"min_doc_words": 50}}, stats=False))
    doc = Document("x", text, meta={"language": "en"})
    assert isinstance(strict[0].process(doc), Rejection)
    assert strict[0].process(doc).reason == "gopher_short_doc"
    assert isinstance(loose[0].process(doc), Document)


def test_text_statistics_columns_match_values():
    stage = TextStatistics()
    out = stage.process(Document("x", "One line here.\nAnother line, longer than the first one."))
    assert set(stage.columns) == set(out.meta)
    assert out.meta["n_lines"] == 2 and out.meta["n_words"] > 5


@pytest.fixture(scope="module")
def lid():
    return LanguageIdentifier()


@pytest.mark.parametrize("text,lang", [
    ("The quick brown fox jumps over the lazy dog while the farmer watches from the porch.", "en"),
    ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht.", "de"),
    ("Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.", "fr"),
    ("El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.", "es"),
    ("素早い茶色の狐が怠け者の犬を飛び越える。農夫はそれを見ている。", "ja"),
])
def test_language_identifier_on_real_sentences(lid, text, lang):
    got, score = lid.predict(text)
    assert got == lang and 0.5 < score <= 1.0


def test_langid_stage_keeps_configured_languages_only():
    stage = IdentifyLanguage(LangIdConfig(languages=["en"], threshold=0.5))
    en = stage.process(Document("a", "This is a plain English sentence about databases and indexes."))
    de = stage.process(Document("b", "Dies ist ein deutscher Satz über Datenbanken und Indizes."))
    assert isinstance(en, Document) and en.meta["language"] == "en"
    assert isinstance(de, Rejection) and de.reason == "language_not_kept" and de.signals["language"] == "de"
    keep_all = IdentifyLanguage(LangIdConfig(languages=[], threshold=0.0))
    assert isinstance(keep_all.process(Document("b", de.text)), Document)


def test_pii_masks_emails_and_public_ips_only():
    stage = MaskPII()
    text = "Write to jane.doe@example.net or root@[10.0.0.1]; server 8.8.8.8, lan 192.168.1.5."
    out = stage.process(Document("p", text))
    assert "jane.doe@example.net" not in out.text and "email@example.com" in out.text
    assert "8.8.8.8" not in out.text and "192.168.1.5" in out.text  # private addresses are not PII
    assert out.meta["pii_emails"] >= 1 and out.meta["pii_ips"] == 1
    again = stage.process(Document("p", text))
    assert again.text == out.text  # one fixed replacement: order-independent


def test_extraction_keeps_article_and_rejects_empty_pages():
    stage = ExtractText()
    body = " ".join(["Databases keep an index so that a lookup does not scan every row."] * 12)
    html = (f"<html><head><title>t</title></head><body><nav><a href='/'>Home</a> | <a href='/x'>X</a></nav>"
            f"<article><h1>Indexes</h1><p>{body}</p></article><footer>© 2024 footer text</footer></body></html>")
    out = stage.process(Document("h", html, mime="text/html"))
    assert isinstance(out, Document) and out.mime == "text/plain"
    assert "lookup does not scan" in out.text and "Home | X" not in out.text
    assert out.meta["html_chars"] == len(html)
    empty = stage.process(Document("e", "<html><body></body></html>", mime="text/html"))
    assert isinstance(empty, Rejection) and empty.reason == "empty"


def sample_pages(limit: int, max_chars: int = 30_000) -> list[Document]:
    """Real HTML pages from the embedded sample corpus, the smaller ones first (keeps the test quick)."""
    from assay.curation.readers import ReaderConfig, read_input
    from assay.pipelines.curate.config import SAMPLE_DIR

    pages = [d for path in sorted(SAMPLE_DIR.glob("*.warc.gz")) for d in read_input(str(path), ReaderConfig())
             if isinstance(d, Document) and d.mime == "text/html" and len(d.text) <= max_chars]
    return pages[:: max(1, len(pages) // limit)][:limit]


def test_extraction_equals_trafilatura_extract_xml_on_sample_pages():
    """Our fingerprint-free call path gives exactly what trafilatura.extract(output_format="xml") gives."""
    import trafilatura

    from assay.curation.extract import ExtractConfig, xml_to_text

    cfg = ExtractConfig(engine="trafilatura")
    stage = ExtractText(cfg)
    pages = sample_pages(8)
    assert len(pages) == 8
    for page in pages:
        xml = trafilatura.extract(page.text, output_format="xml", include_tables=cfg.include_tables,
                                  include_comments=cfg.include_comments, favor_precision=cfg.favor_precision,
                                  deduplicate=False, with_metadata=False)
        expected = (xml_to_text(xml) if xml else "").strip()
        out = stage.process(page)
        assert (out.text if isinstance(out, Document) else "") == expected, page.url
    assert any(isinstance(stage.process(p), Document) for p in pages)


class _FailsOn(Stage):
    """A stage that raises on one document id: the chain must ledger it as stage_error and go on."""

    name = "fails_on"

    def __init__(self, bad_id: str):
        self.bad_id = bad_id

    def process(self, doc: Document) -> Document | Rejection:
        if doc.id == self.bad_id:
            raise ValueError("broken document")
        return doc


def chain_texts() -> list[Document]:
    texts = real_texts()
    docs = [Document(f"t{i:02d}", t) for i, t in enumerate(texts)]
    docs.append(Document("de", "Dies ist ein deutscher Satz über Datenbanken, Indizes und Abfragen in Tabellen."))
    docs.append(Document("pii", "Contact jane.doe@example.net at 8.8.8.8. " * 30))
    return docs


def test_fused_stage_chain_matches_stages_run_one_by_one():
    """One DoFn for the chain: same kept docs, same ledger rows, same per-stage counters as stage-by-stage."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.util import assert_that, equal_to

    from assay.pipelines.job.beam_fns import NAMESPACE, utf8_len
    from assay.pipelines.job.steps import PerDocument, StepContext

    docs = chain_texts()
    def make_stages() -> list[Stage]:
        return ([_FailsOn("t03"), IdentifyLanguage(LangIdConfig(languages=["en"], threshold=0.5))]
                + build_filter_stages(FilterConfig()) + [MaskPII()])

    stages = make_stages()
    # reference: each stage applied in turn, counting the way one DoFn per stage counted
    expected_kept, expected_rejected, expected_counts = [], [], {}
    for doc in docs:
        for stage in stages:
            c = expected_counts.setdefault(stage.name, {"docs_in": 0, "bytes_in": 0, "docs_out": 0, "bytes_out": 0})
            c["docs_in"] += 1
            c["bytes_in"] += utf8_len(doc.text)
            try:
                out = stage.process(doc)
            except ValueError:
                out = Rejection.of(doc, stage.name, "stage_error")
            if isinstance(out, Rejection):
                key = f"rejected|{out.reason}"
                c[key] = c.get(key, 0) + 1
                expected_rejected.append((out.id, out.stage, out.reason, json_signals(out)))
                break
            c["docs_out"] += 1
            c["bytes_out"] += utf8_len(out.text)
            doc = out
        else:
            expected_kept.append((doc.id, doc.text, tuple(sorted(doc.meta.items()))))
    assert {r[2] for r in expected_rejected} >= {"language_not_kept", "stage_error"}
    assert expected_kept, "some documents should pass every stage"

    p = beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(["--direct_running_mode=in_memory"]))
    kept, rejected = PerDocument(*make_stages()).expand(p | beam.Create(docs), StepContext())
    assert len(rejected) == 1
    assert_that(kept | "k" >> beam.Map(lambda d: (d.id, d.text, tuple(sorted(d.meta.items())))),
                equal_to(expected_kept), label="kept")
    assert_that(rejected[0] | "r" >> beam.Map(lambda r: (r.id, r.stage, r.reason, json_signals(r))),
                equal_to(expected_rejected), label="rejected")
    result = p.run()
    result.wait_until_finish()
    got: dict[str, dict[str, int]] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        stage, _, metric = counter.key.metric.name.partition("|")
        if "rejected_bytes" not in metric:
            got.setdefault(stage, {})[metric] = counter.committed
    assert got == expected_counts


def json_signals(rejection: Rejection) -> str:
    import json

    return json.dumps(rejection.signals, sort_keys=True, default=str)


def test_installed_word_split_gives_the_same_tokens_as_a_fresh_tokenizer():
    """assay's split under datatrove's shared tokenizer: the same words as a fresh datatrove tokenizer (its own
    spaCy split), on real text and its simplified form; sentence spans are datatrove's own."""
    from datatrove.utils.text import TextNormConfig, simplify_text
    from datatrove.utils.word_tokenizers import SpaCyTokenizer, load_word_tokenizer

    from assay.curation.fast import word_cache

    extract = ExtractText()
    pages = [extract.process(p) for p in sample_pages(12)]
    texts = [t for t in real_texts() if t.strip()] + [p.text for p in pages if isinstance(p, Document)]
    assert word_cache.install_word_split("en")
    shared = load_word_tokenizer("en")
    fresh = SpaCyTokenizer("en")
    for text in texts:
        for variant in (text, simplify_text(text, TextNormConfig())):
            assert shared.word_tokenize(variant) == fresh.word_tokenize(variant)
        assert shared.span_tokenize(text) == fresh.span_tokenize(text)
    assert word_cache.remembered_chunks("en") > 1000


def test_word_split_keeps_to_its_bound_and_can_be_turned_off():
    from datatrove.utils.word_tokenizers import SpaCyTokenizer, load_word_tokenizer

    from assay.curation.fast import word_cache

    shared, fresh = load_word_tokenizer("en"), SpaCyTokenizer("en")
    assert word_cache.install_word_split("en")
    have = word_cache.remembered_chunks("en")
    assert word_cache.install_word_split("en", max_words=have + 5)
    text = " ".join(f"boundprobe{i}, (x{i})" for i in range(50))
    assert shared.word_tokenize(text) == fresh.word_tokenize(text)
    assert word_cache.remembered_chunks("en") == have + 5  # past the bound, chunks are split but not kept
    assert shared.word_tokenize("IS_ALPHA isalphaprobe") == fresh.word_tokenize("IS_ALPHA isalphaprobe")
    assert not word_cache.install_word_split("en", max_words=0)  # datatrove's own method again
    assert "word_tokenize" not in shared.__dict__ and word_cache.remembered_chunks("en") == 0
    assert word_cache.install_word_split("en")
    assert not word_cache.install_word_split("xx-not-a-language")


def test_filter_config_rejects_a_negative_word_cache_bound():
    with pytest.raises(ValueError, match="tokenizer_cache_words"):
        FilterConfig(tokenizer_cache_words=-1)


def test_resiliparse_engine_extracts_main_text_of_sample_pages():
    """The optional engine (installed with the dev extra): real pages give text, an empty page is rejected."""
    pytest.importorskip("resiliparse", reason="pip install -e .[resiliparse]")
    from assay.curation.extract import ExtractConfig

    stage = ExtractText(ExtractConfig(engine="resiliparse"))
    stage.setup()
    pages = sample_pages(6)
    outs = [stage.process(p) for p in pages]
    kept = [o for o in outs if isinstance(o, Document)]
    assert len(kept) >= 4
    for out in kept:
        assert out.mime == "text/plain" and "<div" not in out.text and len(out.text.split()) > 20
    html = ("<html><head><script>var tracking = 1;</script></head><body><nav>Home | About</nav>"
            "<article><p>Water boils at one hundred degrees Celsius at sea level, and lower on mountains.</p>"
            "</article></body></html>")
    out = stage.process(Document("r", html, mime="text/html"))
    assert isinstance(out, Document) and "Water boils" in out.text and "tracking" not in out.text
    empty = stage.process(Document("e", "<html><body></body></html>", mime="text/html"))
    assert isinstance(empty, Rejection) and empty.reason == "empty"


def test_unknown_extraction_engine_is_a_clear_error():
    from assay.curation.extract import ExtractConfig

    with pytest.raises(ValueError, match="extract.engine"):
        ExtractText(ExtractConfig(engine="bs4")).setup()


def test_filters_of_one_document_share_its_word_split():
    """The split is computed once per judged text and handed out as a fresh list with the same tokens."""
    from assay.curation.fast.word_cache import _SharedSplit

    calls = []

    def inner(text):
        calls.append(text)
        return text.split()

    shared = _SharedSplit(inner)
    text = "Water boils at one hundred degrees . It freezes at zero ."
    first = shared(text)
    first.append("mutated")  # a filter changing its list does not change the next filter's
    assert shared(text) == text.split() and len(calls) == 1
    assert shared("Another page .") == ["Another", "page", "."] and len(calls) == 2
