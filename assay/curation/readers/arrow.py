"""Arrow IPC files -> Documents: the `data-*.arrow` files of a Hugging Face `datasets` folder (`save_to_disk`).

`datasets` writes the Arrow streaming format, one record batch per `writer_batch_size` rows; Arrow's file
format (Feather v2) is read too. Rows become Documents exactly as Parquet rows do (same fields, same limits,
same rejections), so a dataset saved with `save_to_disk` and the same rows as Parquet give the same run.
The folder's JSON side files (state.json, dataset_info.json, dataset_dict.json) are metadata, not input
(assay/curation/readers/formats.py passes over them).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import pyarrow as pa

from assay.curation.document import Document, Rejection
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.files import open_binary
from assay.curation.readers.parquet import batch_documents

_FILE_MAGIC = b"ARROW1"


def open_batches(fh) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    """(column names, record batches) of an Arrow IPC file or stream open in `fh`."""
    is_file_format = fh.read(len(_FILE_MAGIC)) == _FILE_MAGIC
    fh.seek(0)
    if is_file_format:
        reader = pa.ipc.open_file(fh)
        return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    reader = pa.ipc.open_stream(fh)
    return reader.schema.names, iter(reader)


def read_arrow(path: str, cfg: ReaderConfig, start: int = 0, end: int | None = None,
               before: int = 0) -> Iterator[Document | Rejection]:
    """The rows of `path`, or (a work unit: assay/curation/readers/units.py) those of record batches [start, end),
    `before` rows coming before them (a stream's earlier batches are passed over, not converted)."""
    with open_binary(path) as fh:
        names, batches = open_batches(fh)
        if start or end is not None:
            batches = itertools.islice(batches, start, end)
        yield from batch_documents(names, batches, path, cfg, first_row=before)
