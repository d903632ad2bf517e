"""Reader settings: which format, which fields hold text/id/url, and the size limit of one record.

One dataclass, the `[input.reader]` table of a run config; every default is defined here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("auto", "warc", "html", "jsonl", "parquet", "arrow")


@dataclass
class ReaderConfig:
    #: "auto" picks the format from each file's name; otherwise every input file is read as this format
    format: str = "auto"
    #: JSONL / Parquet fields (columns) holding the text, the document id, the URL and the date
    text_field: str = "text"
    id_field: str = "id"  # a missing or empty id gets one made from the file and its line or row number
    url_field: str = "url"  # kept in the output's `url` column
    date_field: str = "date"  # kept in the output's `date` column
    #: a record (WARC payload, HTML file, JSONL line, Parquet cell) larger than this is quarantined as "too_large"
    max_record_bytes: int = 10 * 1024 * 1024
    #: glob patterns on file names: in a directory, read only the matching files ([] = every known format)
    include: list[str] = field(default_factory=list)
    #: glob patterns on file names to skip in a directory (e.g. ["*.tmp", "robots*"])
    exclude: list[str] = field(default_factory=list)
    #: HTML file ids are stable_id(path relative to this folder); empty: the path as given
    id_base: str = ""
    #: a body that declares nothing and is UTF-8 except for at most this fraction of bad bytes is decoded as
    #: UTF-8 with replacement characters instead of being handed to the charset detector
    max_invalid_utf8_fraction: float = 0.001
    #: check WARC-Block-Digest / WARC-Payload-Digest; a record whose bytes do not match is "digest_mismatch"
    verify_digests: bool = True
    #: Parquet rows per record batch (memory is about this many rows at a time)
    parquet_batch_rows: int = 1024
    #: in a folder, read only this split of a Hugging Face-style dataset: files under a folder of that name
    #: (save_to_disk's DatasetDict, `train/0000.parquet`) or named after it (`data/train-00000-of-00002.parquet`,
    #: `test.jsonl`); "" reads every file
    split: str = ""
    #: a file larger than this is read as several work units of about this many bytes (JSONL lines, WARC records,
    #: Parquet row groups, Arrow batches), so the workers share one big file; ids and output do not change.
    #: 0: every file is one unit
    unit_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"reader.format: unknown format {self.format!r}; use one of {list(FORMATS)}")
        if self.max_record_bytes <= 0:
            raise ValueError(f"reader.max_record_bytes must be positive, got {self.max_record_bytes}")
        if self.unit_bytes < 0:
            raise ValueError(f"reader.unit_bytes must be positive (or 0: do not split files), got {self.unit_bytes}")
        if self.parquet_batch_rows <= 0:
            raise ValueError(f"reader.parquet_batch_rows must be positive, got {self.parquet_batch_rows}")
        if not 0.0 <= self.max_invalid_utf8_fraction < 1.0:
            raise ValueError("reader.max_invalid_utf8_fraction must be in [0, 1), "
                             f"got {self.max_invalid_utf8_fraction}")
