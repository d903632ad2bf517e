"""Parquet -> Documents, one record batch at a time, with configurable text/id/url/date columns.

A Parquet cell is loaded with its batch (the format has no way to stream inside a value), so the size limit
here quarantines big texts rather than preventing their load; `parquet_batch_rows` bounds the batch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow.parquet as pq

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.decode import binary_reason, decode_body
from assay.curation.readers.files import open_binary
from assay.curation.readers.jsonl import field_str
from assay.curation.readers.quarantine import rejected


def row_document(values: dict, path: str, row: int, cfg: ReaderConfig, column_type: str = "") -> Document | Rejection:
    """One table row ({column: value}) as a Document, or the Rejection saying why not (Parquet and Arrow);
    `column_type` (the text column's Arrow type) is named when the column holds no text."""
    doc_id = field_str(values.get(cfg.id_field)) or stable_id(path, str(row))
    url = field_str(values.get(cfg.url_field))
    text = values.get(cfg.text_field)
    if isinstance(text, bytes):  # a binary column: decode it like a page body
        why = binary_reason(text, None)
        if why:
            return rejected("binary_content", path, f"row {row}: {why}", id=doc_id, url=url, row=row, bytes=len(text))
        decoded = decode_body(text, None, cfg.max_invalid_utf8_fraction)
        if decoded.text is None:
            return rejected(decoded.reason, path, f"row {row}: {decoded.detail}", id=doc_id, url=url,
                            text=text.decode("utf-8", "replace"), row=row, bytes=len(text))
        text = decoded.text
    if text is not None and not isinstance(text, str):
        return rejected("wrong_type", path, f"row {row}: type error: column {cfg.text_field!r} is of type "
                        f"{column_type}, not a string or binary column (set reader.text_field to the column that "
                        "holds the text)", id=doc_id, url=url, row=row)
    if not isinstance(text, str):
        return rejected("missing_text_field", path, f"row {row}: column {cfg.text_field!r} is null",
                        id=doc_id, url=url, row=row)
    if len(text) > cfg.max_record_bytes or (4 * len(text) > cfg.max_record_bytes
                                            and len(text.encode("utf-8")) > cfg.max_record_bytes):
        return rejected("too_large", path, f"row {row}: text over reader.max_record_bytes={cfg.max_record_bytes}",
                        id=doc_id, url=url, row=row, bytes=len(text.encode("utf-8")))
    return Document(id=doc_id, text=text, source=path, url=url, date=field_str(values.get(cfg.date_field)),
                    mime="text/plain")


def read_parquet(path: str, cfg: ReaderConfig, start: int = 0, end: int | None = None,
                 before: int = 0) -> Iterator[Document | Rejection]:
    """The rows of `path`, or (a work unit: assay/curation/readers/units.py) those of row groups [start, end),
    `before` rows coming before them; row numbers count from the file's start."""
    with open_binary(path) as fh:
        yield from _read(pq.ParquetFile(fh), path, cfg, start, end, before)


def _read(pf: pq.ParquetFile, path: str, cfg: ReaderConfig, start: int = 0, end: int | None = None,
          before: int = 0) -> Iterator[Document | Rejection]:
    names = pf.schema_arrow.names
    groups = None if start == 0 and end is None else list(range(start, pf.num_row_groups if end is None else end))
    batches = (pf.iter_batches(batch_size=cfg.parquet_batch_rows, row_groups=groups,
                               columns=table_columns(names, cfg))
               if cfg.text_field in names else iter(()))
    yield from batch_documents(names, batches, path, cfg, rows=pf.metadata.num_rows, first_row=before)


def table_columns(names: list[str], cfg: ReaderConfig) -> list[str]:
    """The columns a reader needs of a table with columns `names`: text, id, url and date, where present."""
    return [c for c in dict.fromkeys([cfg.text_field, cfg.id_field, cfg.url_field, cfg.date_field]) if c in names]


def batch_documents(names: list[str], batches: Iterable, path: str, cfg: ReaderConfig,
                    rows: int | None = None, first_row: int = 0) -> Iterator[Document | Rejection]:
    """Documents of a table's record batches (Parquet, Arrow), row by row, the first being row `first_row` of the
    file; a table without the text column is one "missing_text_field" Rejection for the file (`rows`: its row
    count, where known)."""
    if cfg.text_field not in names:
        yield rejected("missing_text_field", path,
                       f"no column {cfg.text_field!r}; columns: {names[:30]} "
                       "(set reader.text_field to the column that holds the text)",
                       id=stable_id(path, "file"), **({"rows": rows} if rows is not None else {}))
        return
    wanted = table_columns(names, cfg)
    row = first_row
    for batch in batches:
        columns = {name: batch.column(name).to_pylist() for name in wanted}
        column_type = str(batch.schema.field(cfg.text_field).type)  # named in a type error
        for i in range(batch.num_rows):
            yield row_document({name: values[i] for name, values in columns.items()}, path, row, cfg, column_type)
            row += 1
