"""Real pages for the equality tests of assay's fast statistics: every page of the held-out quality corpus and of
the embedded sample corpus, extracted as the default pipeline extracts them, each view (the whole text and the
prose view) once. Computed once per test process."""
from __future__ import annotations

import functools
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _views(pattern: str) -> tuple[str, ...]:
    from assay.curation.document import Document
    from assay.curation.extract import ExtractConfig, ExtractText
    from assay.curation.readers import ReaderConfig, read_input

    stage = ExtractText(ExtractConfig(engine="resiliparse"))
    stage.setup()
    texts: dict[str, None] = {}
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        for record in read_input(path, ReaderConfig()):
            if isinstance(record, Document) and record.mime == "text/html":
                out = stage.process(record)
                if isinstance(out, Document):
                    texts[out.text] = None
                    texts[out.view("prose")] = None
    return tuple(texts)


@functools.lru_cache(maxsize=None)
def eval_views() -> tuple[str, ...]:
    """Both views of every page of data/quality/eval that extraction keeps (about 1,600 texts)."""
    views = _views("data/quality/eval/*.warc.gz")
    assert len(views) > 1000, "the held-out quality corpus is missing"
    return views


@functools.lru_cache(maxsize=None)
def sample_views() -> tuple[str, ...]:
    """Both views of every HTML page of the embedded sample corpus (data/sample)."""
    views = _views("data/sample/*.warc.gz")
    assert len(views) > 300, "the embedded sample corpus is missing"
    return views
