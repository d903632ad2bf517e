"""Document shards on disk: layout of a curation output, atomic Parquet writes, and reading back.

A curation output directory holds
    docs/part-00000-of-00004.parquet    kept documents, one column per signal
    rejected/part-00000-of-00001.parquet the ledger: every dropped or unreadable record with its reason
    stats/funnel.json                   per-stage counts and bytes; stats/*.png histograms
    run.json                            the resolved config, versions and timing of the run
    .assay-output                       written before anything else: this folder is a job's to replace
Shards are written to a temporary name and renamed into place, so a reader never sees half a file and a
killed run leaves nothing that looks finished. Files are written through Beam's FileSystems so the same
code writes to local disk, GCS or S3.
"""
from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.document import DOC_COLUMNS, LEDGER_SCHEMA, Document
from groundwork.atomic import check_replaceable, replace_folder, write_json_atomic

DOCS_DIR = "docs"
LEDGER_DIR = "rejected"
STATS_DIR = "stats"
RUN_FILE = "run.json"
FUNNEL_FILE = "funnel.json"
OUTPUT_MARKER = ".assay-output"
STAGING_DIR = ".staging"  # a job's shards before they are published


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def doc_schema(signal_columns: dict[str, pa.DataType]) -> pa.Schema:
    """Schema of a document shard: the fixed columns, then the signals in a stable (sorted) order."""
    fields = [pa.field(k, v) for k, v in DOC_COLUMNS.items()]
    fields += [pa.field(k, signal_columns[k]) for k in sorted(signal_columns) if k not in DOC_COLUMNS]
    return pa.schema(fields)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns; missing signals become nulls, extra keys are an error."""
    names = set(schema.names)
    for row in rows:
        extra = set(row) - names
        if extra:
            raise ValueError(f"record {row.get('id')!r} has columns not in the shard schema: {sorted(extra)}")
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def write_table_atomic(table: pa.Table, path: str, compression: str = "zstd") -> None:
    """Write a Parquet file so that `path` either does not exist or is complete.

    Deterministic bytes for the same table (no timestamps in the file), so a rerun rewrites identical shards.
    """
    from apache_beam.io.filesystems import FileSystems

    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression, row_group_size=10_000)
    directory = path.rsplit("/", 1)[0] if "/" in path else "."
    if not FileSystems.exists(directory):
        try:
            FileSystems.mkdirs(directory)
        except OSError:  # another worker created it first
            pass
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
    with FileSystems.create(tmp) as fh:
        fh.write(buf.getvalue())
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def shard_files(directory: str) -> list[str]:
    """Finished Parquet shards in a directory (temporary files are ignored), in name order."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".parquet") and not f.startswith(".")
    )


def document_shards(path: str) -> list[str]:
    """The document shard files of `path`: an output folder (its docs/), a folder of shards, or one shard file
    (local, or gs:// / s3://). FileNotFoundError, saying what to pass, when there are none."""
    if is_remote(path):
        files = list_shards(f"{path.rstrip('/')}/{DOCS_DIR}") or list_shards(path.rstrip("/"))
    elif os.path.isfile(path):
        files = [path]
    else:
        files = shard_files(os.path.join(path, DOCS_DIR)) or shard_files(path)
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {path!r}: pass an `assay run` output folder, its docs/ "
                                "folder or a .parquet file")
    return files


def read_documents(directory: str, columns: list[str] | None = None) -> Iterator[Document]:
    """Stream Documents back from document shards (an output folder, its docs/, or shard files)."""
    for path in document_shards(directory):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(columns=columns, batch_size=2048):
            for row in batch.to_pylist():
                yield Document.from_row(row)


def ledger_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return rows_to_table(list(rows), LEDGER_SCHEMA)


def is_remote(path: str) -> bool:
    return "://" in path


def list_shards(directory: str) -> list[str]:
    """Finished shards in a local or remote (gs://, s3://) folder."""
    if not is_remote(directory):
        return shard_files(directory)
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([f"{directory}/*.parquet"])[0].metadata_list)


def ensure_nonempty(directory: str, schema: pa.Schema) -> None:
    """A dataset with no rows still gets one empty shard, so readers and SQL views work."""
    if not list_shards(directory):
        write_table_atomic(rows_to_table([], schema), f"{directory}/{shard_name(0, 1)}")


def is_shard_output(folder: str) -> bool:
    """Whether `folder` is an earlier output of a shard-writing job: it has the marker `claim_output` writes, or
    (outputs of older versions) a run.json as the job writes it, or only the staging folder of a killed first run."""
    if os.path.isfile(os.path.join(folder, OUTPUT_MARKER)) or os.listdir(folder) == [STAGING_DIR]:
        return True
    try:
        with open(os.path.join(folder, RUN_FILE), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"job", "versions", "counts"} <= set(record)


def claim_output(folder: str, job: str) -> None:
    """Before a job writes anything into the local folder `folder` (its docs/ and rejected/ are replaced when it
    publishes): refuse a folder that is not empty and not an earlier output (FileExistsError saying what to do),
    then mark it, so that a killed first run can be rerun into it."""
    check_replaceable(folder, is_shard_output, f"an output of an assay job (no {RUN_FILE} or {OUTPUT_MARKER} in it)")
    os.makedirs(folder, exist_ok=True)
    write_json_atomic({"job": job}, os.path.join(folder, OUTPUT_MARKER))


def publish(staging: str, out: str, subdirs: Iterable[str] = (DOCS_DIR, LEDGER_DIR)) -> None:
    """Move finished shard folders from `staging` into `out`, replacing the previous ones, then drop staging.

    Until this runs, readers of `out` see the previous output untouched. Local: each folder replaced by
    groundwork.atomic.replace_folder. Remote: each staged file is renamed over its final name, then final
    files this run did not write are deleted.
    """
    import shutil

    if is_remote(out):
        from apache_beam.io.filesystems import FileSystems

        for sub in subdirs:
            staged = list_shards(f"{staging}/{sub}")
            targets = [f"{out}/{sub}/{p.rsplit('/', 1)[-1]}" for p in staged]
            FileSystems.rename(staged, targets)
            stale = [p for p in list_shards(f"{out}/{sub}") if p not in set(targets)]
            if stale:
                FileSystems.delete(stale)
        return
    for sub in subdirs:
        replace_folder(os.path.join(staging, sub), os.path.join(out, sub))
    shutil.rmtree(staging, ignore_errors=True)
