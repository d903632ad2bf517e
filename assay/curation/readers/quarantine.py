"""The read-stage Rejection: what could not be read, why (a short machine-readable reason) and where.

Every reader builds its ledger records here, so the reasons form one documented vocabulary.
"""
from __future__ import annotations

from typing import Any

from assay.curation.document import Rejection

STAGE = "read"

#: reason -> what it means (docs/readers.md lists the same table)
REASONS = {
    "truncated_gzip": "a gzip/zstd stream ends early: the records before the cut were read, the rest is lost",
    "corrupt_compression": "compressed bytes that do not decompress (bit rot, wrong file type)",
    "bad_warc_record": "a WARC record whose header or layout cannot be parsed; reading resumed at the next record",
    "digest_mismatch": "a WARC record whose bytes do not match its WARC-Block/Payload-Digest (bit rot, bad copy)",
    "truncated_record": "a record shorter than its declared Content-Length (the file was cut)",
    "invalid_encoding": "bytes that decode in no declared, UTF-8 or detected charset",
    "binary_content": "a non-text payload (image, PDF, octet-stream, NUL bytes)",
    "too_large": "a record above reader.max_record_bytes; it was skipped without being loaded",
    "http_status": "an HTTP response that is not a 2xx success (redirect, error page)",
    "bad_json": "a JSONL line that is not a JSON object",
    "missing_text_field": "a JSONL object or Parquet row without a string in reader.text_field",
    "wrong_type": "reader.text_field holds something that is not text (a number, a list, an object)",
    "unreadable_file": "a file that cannot be opened or parsed at all (permissions, not Parquet, ...)",
}


def rejected(reason: str, source: str, detail: str, *, id: str = "", url: str = "",
             text: str | None = None, **signals: Any) -> Rejection:
    """A read-stage Rejection; `signals` hold where it was (offset, line, row) and its size in `bytes`."""
    if reason not in REASONS:
        raise ValueError(f"unknown read rejection reason {reason!r}; add it to REASONS in {__name__}")
    return Rejection(stage=STAGE, reason=reason, id=id, source=source, url=url, detail=detail,
                     signals=signals, text=text)
