"""Per-document stages on real text: datatrove filter parity, fastText language ID, PII masking, extraction."""
import glob
import gzip
import os
import sys

import pytest
from datatrove.data import Document as DtDocument
from datatrove.pipeline import filters as dt

from curation.document import Document, Rejection
from curation.extract import ExtractText
from curation.filters import DEFAULT_FILTERS, DatatroveFilter, FilterConfig, TextStatistics, build_filter_stages
from curation.langid import IdentifyLanguage, LangIdConfig, LanguageIdentifier
from curation.pii import MaskPII


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


@pytest.mark.parametrize("name", list(DEFAULT_FILTERS))
def test_filter_decisions_equal_datatrove_called_directly(name):
    ours = DatatroveFilter(name, FilterConfig().kwargs_for(name))
    theirs = CLASSES[name](**FilterConfig().kwargs_for(name))
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
    strict = build_filter_stages(FilterConfig(enabled=["gopher_quality"], params={"gopher_quality": {"min_doc_words": 100}}, stats=False))
    loose = build_filter_stages(FilterConfig(enabled=["gopher_quality"], params={"gopher_quality": {"min_doc_words": 50}}, stats=False))
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
