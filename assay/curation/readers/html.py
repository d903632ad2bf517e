"""One .html/.htm file -> one Document (mime text/html), decoded the way a browser would.

The id is stable_id of the file's path relative to reader.id_base, so a saved site keeps its ids when the
folder moves; the URL comes from the page's <link rel="canonical"> when it has one.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.decode import binary_reason, decode_body
from assay.curation.readers.files import is_remote, open_binary, size_of
from assay.curation.readers.quarantine import rejected

_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_REL_CANONICAL = re.compile(r"\brel\s*=\s*[\"']?canonical\b", re.I)
_HREF = re.compile(r"\bhref\s*=\s*[\"']?([^\"'\s>]+)", re.I)
#: how far into a page the canonical link is looked for (it belongs in <head>, which this bounds generously)
_HEAD_CHARS = 32_768


def canonical_url(html: str) -> str:
    """The href of the first <link rel="canonical"> in the page head, or ""."""
    for tag in _LINK_TAG.findall(html[:_HEAD_CHARS]):
        if _REL_CANONICAL.search(tag):
            m = _HREF.search(tag)
            if m:
                return m.group(1)
    return ""


def html_file_id(path: str, cfg: ReaderConfig) -> str:
    key = path
    if cfg.id_base and is_remote(path):
        base = cfg.id_base.rstrip("/") + "/"
        key = path[len(base):] if path.startswith(base) else path
    elif cfg.id_base:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(cfg.id_base))
        if not rel.startswith(os.pardir):
            key = rel
    return stable_id(key.replace(os.sep, "/"))


def read_html_file(path: str, cfg: ReaderConfig) -> Iterator[Document | Rejection]:
    doc_id = html_file_id(path, cfg)
    limit = cfg.max_record_bytes
    size = size_of(path)
    if size > limit:
        yield rejected("too_large", path, f"file has {size} bytes, over reader.max_record_bytes={limit}",
                       id=doc_id, bytes=size)
        return
    with open_binary(path) as fh:
        body = fh.read(limit + 1)
    if len(body) > limit:  # the file grew since it was measured
        yield rejected("too_large", path, f"file grew past reader.max_record_bytes={limit} while being read",
                       id=doc_id, bytes=len(body))
        return
    why = binary_reason(body, "text/html")
    if why:
        yield rejected("binary_content", path, why, id=doc_id, bytes=len(body))
        return
    decoded = decode_body(body, None, cfg.max_invalid_utf8_fraction)
    if decoded.text is None:
        yield rejected(decoded.reason, path, decoded.detail, id=doc_id, text=body.decode("utf-8", "replace"),
                       bytes=len(body))
        return
    yield Document(id=doc_id, text=decoded.text, source=path, url=canonical_url(decoded.text), mime="text/html")
