"""Input readers: WARC, HTML files, JSONL, Parquet and Arrow (Hugging Face `datasets` folders) -> Documents, and
read-stage Rejections for bad input.

`expand_inputs` turns the configured paths into input files, `plan_units` a file into work units (the whole
file, or ranges of a large one: assay/curation/readers/units.py); `read_input` streams a file or one unit.
Reading never raises for bad content: what cannot be read becomes a Rejection (stage "read") with a reason
from `REASONS`, and reading goes on with the next record.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.arrow import read_arrow
from assay.curation.readers.config import FORMATS, ReaderConfig
from assay.curation.readers.files import shown_name
from assay.curation.readers.formats import accepted_formats, format_of
from assay.curation.readers.html import read_html_file
from assay.curation.readers.inputs import expand_inputs
from assay.curation.readers.jsonl import read_jsonl
from assay.curation.readers.parquet import read_parquet
from assay.curation.readers.quarantine import REASONS, rejected
from assay.curation.readers.units import Unit, plan_units
from assay.curation.readers.warc import read_warc

__all__ = ["FORMATS", "REASONS", "ReaderConfig", "Unit", "expand_inputs", "plan_units", "read_input"]

#: format -> reader(path, cfg, start, end, before); a reader reads its whole file unless given a unit's range
READERS: dict[str, Callable[..., Iterator[Document | Rejection]]] = {
    "warc": read_warc,
    "html": read_html_file,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "arrow": read_arrow,
}


def read_input(path: str | Unit, cfg: ReaderConfig | None = None) -> Iterator[Document | Rejection]:
    """Stream the Documents of one input file (or one work unit of it), and a Rejection for each part that could
    not be read.

    A file that cannot be opened or parsed at all yields one "unreadable_file" Rejection (after whatever
    records came before the failure).
    """
    cfg = cfg or ReaderConfig()
    unit = path if isinstance(path, Unit) else Unit(path)
    path = unit.name
    shown = shown_name(path)
    if shown != path:  # a file name that is not UTF-8: read by its bytes, reported by its \xNN form
        for item in _read_input(path, cfg, unit):
            item.source = shown
            if isinstance(item, Rejection):
                item.detail = item.detail.replace(path, shown)
                item.detail = shown_name(item.detail)
            yield item
        return
    yield from _read_input(path, cfg, unit)


def _read_input(path: str, cfg: ReaderConfig, unit: Unit) -> Iterator[Document | Rejection]:
    fmt = format_of(path, cfg.format)
    if fmt is None:
        yield rejected("unreadable_file", path, f"no known format; rename it to one of {accepted_formats()} "
                       "or set reader.format", id=stable_id(path, "file"))
        return
    count = 0
    try:
        ranged = {} if unit.whole else {"start": unit.start, "end": unit.end, "before": unit.before}
        for item in READERS[fmt](path, cfg, **ranged):
            count += 1
            yield item
    except Exception as exc:  # the file itself is bad (permissions, not the format it claims): quarantine it
        yield rejected("unreadable_file", path,
                       f"read as {fmt} failed after {count} record(s): {type(exc).__name__}: {exc}; "
                       "check the file is complete and of that format (or set reader.format)",
                       id=stable_id(path, "file"), records_before=count)
