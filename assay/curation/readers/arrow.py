"""Arrow IPC files -> Documents: the `data-*.arrow` files of a Hugging Face `datasets` folder (`save_to_disk`).

`datasets` writes the Arrow streaming format, one record batch per `writer_batch_size` rows; Arrow's file
format (Feather v2) is read too. Rows become Documents exactly as Parquet rows do (same fields, same limits,
same rejections), so a dataset saved with `save_to_disk` and the same rows as Parquet give the same run.
The folder's JSON side files (state.json, dataset_info.json, dataset_dict.json) are metadata, not input
(assay/curation/readers/formats.py passes over them).
"""
from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from assay.curation.document import Document, Rejection
from assay.curation.readers.config import ReaderConfig
from assay.curation.readers.files import open_binary
from assay.curation.readers.parquet import batch_documents

_FILE_MAGIC = b"ARROW1"


def read_arrow(path: str, cfg: ReaderConfig) -> Iterator[Document | Rejection]:
    with open_binary(path) as fh:
        is_file_format = fh.read(len(_FILE_MAGIC)) == _FILE_MAGIC
        fh.seek(0)
        if is_file_format:
            reader = pa.ipc.open_file(fh)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            yield from batch_documents(reader.schema.names, batches, path, cfg)
        else:
            reader = pa.ipc.open_stream(fh)
            yield from batch_documents(reader.schema.names, reader, path, cfg)
