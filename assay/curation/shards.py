"""Document shards on disk: layout of a curation output, atomic Parquet writes, and reading back.

A (local) curation output directory holds
    docs/part-00000-of-00004.parquet    kept documents, one column per signal
    rejected/part-00000-of-00001.parquet the ledger: every dropped or unreadable record with its reason
    stats/funnel.json                   per-stage counts and bytes; stats/*.png histograms
    run.json                            the resolved config, versions, timing, counts and shard checksums
    README.md                           the dataset card (assay/pipelines/job/card.py)
    .assay-output                       written before anything else: this folder is a job's to replace
where docs, rejected, stats, run.json and README.md are fixed links into `current`, itself a link to the
published run:
    current -> runs/<run id>            replaced in one step when a run publishes (the switch)
    runs/<run id>/                      docs/ rejected/ stats/ run.json of that run
    .staging/<run id>/                  a run in progress: never read, removed when it is left by a dead run
    .lock                               the pid of the run that holds the folder (assay.groundwork.atomic.output_lock)
    .resume/<fingerprint>/              input files a killed run finished (assay/pipelines/job/resume.py)
A reader resolves `current` once (`published_run`) and reads that run's files, so it sees the whole new output
or the whole old one; run.json is written before the switch and checked by readers (`checked_run`). Shards are
written to a temporary name and renamed into place, so a reader never sees half a file. Files are written
through Beam's FileSystems so the same code writes to local disk, GCS or S3 (a remote output has no links:
its docs/ and rejected/ are replaced file by file, `publish`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from assay.curation.document import DOC_COLUMNS, LEDGER_SCHEMA, Document
from assay.groundwork.atomic import (
    LOCK_FILE,
    STAGING,
    check_replaceable,
    replace_folder,
    switch_link,
    write_json_atomic,
)

DOCS_DIR = "docs"
LEDGER_DIR = "rejected"
STATS_DIR = "stats"
RUN_FILE = "run.json"
FUNNEL_FILE = "funnel.json"
OUTPUT_MARKER = ".assay-output"
STAGING_DIR = STAGING  # a job's runs before they are published (assay.groundwork.atomic.STAGING)
RUNS_DIR = "runs"
CURRENT = "current"
CARD_FILE = "README.md"  # the dataset card a job writes (assay/pipelines/job/card.py)
#: the fixed links of an output folder, each into `current`
LINKED = (DOCS_DIR, LEDGER_DIR, STATS_DIR, RUN_FILE, CARD_FILE)


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
        run = published_run(path)
        files = shard_files(os.path.join(run, DOCS_DIR)) or shard_files(path)
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
    if os.path.isfile(os.path.join(folder, OUTPUT_MARKER)) or set(os.listdir(folder)) <= {STAGING_DIR, LOCK_FILE}:
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
    assay.groundwork.atomic.replace_folder. Remote: each staged file is renamed over its final name, then final
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


class OutputError(Exception):
    """An output folder that cannot be read as it is (a file missing, cut short or changed since the run wrote it);
    the message is one paragraph: what is wrong and what to do."""


def published_run(out: str) -> str:
    """The folder holding the run readers of `out` see: `out/current` resolved once (so later reads all come from
    one run, whatever publishes meanwhile), or `out` itself for a folder of older layout or of plain shards."""
    current = os.path.join(out, CURRENT)
    return os.path.realpath(current) if os.path.lexists(current) else out


def read_run_record(folder: str) -> dict | None:
    """The run.json of a run folder; None when there is none; OutputError when it is cut short or not a record."""
    path = os.path.join(folder, RUN_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} is unreadable or cut short ({exc}): this output cannot be trusted; run the job "
                          "again into this folder (its shards are rewritten), or restore the folder from a "
                          "backup") from None
    if not isinstance(record, dict) or "job" not in record:
        raise OutputError(f"{path} is not the record of an assay run (no 'job' entry): run the job again into this "
                          "folder, or point at the right output")
    return record


def checked_run(out: str, verify: bool = True) -> tuple[str, dict | None]:
    """(run folder, its run.json) of an output for a reader. An output of this layout must have a published run
    with a readable run.json, and (with `verify`) every shard run.json lists, with its bytes and checksum;
    a folder of older layout or of plain shards is read as it is (record None when it has no run.json)."""
    if os.path.lexists(os.path.join(out, CURRENT)):
        folder = published_run(out)
        if not os.path.isdir(folder):
            raise OutputError(f"{out}: its current run ({os.readlink(os.path.join(out, CURRENT))}) is missing: the "
                              "folder was changed by hand or a disk failed; run the job again into this folder")
        record = read_run_record(folder)
        if record is None:
            raise OutputError(f"{out}: the published run has no {RUN_FILE}; the folder was changed by hand: run the "
                              "job again into this folder")
    else:
        folder, record = out, read_run_record(out)
    if verify and record and record.get("files"):
        verify_files(folder, record["files"])
    return folder, record


def file_checksums(folder: str, subdirs: Iterable[str] = (DOCS_DIR, LEDGER_DIR)) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} of every shard under `folder`'s `subdirs` (recorded in run.json)."""
    found = {}
    for sub in subdirs:
        for path in shard_files(os.path.join(folder, sub)):
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            found[f"{sub}/{os.path.basename(path)}"] = {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}
    return found


def verify_files(folder: str, files: dict[str, dict]) -> None:
    """OutputError naming every shard that is missing, extra, or not the bytes run.json recorded."""
    listed = set(files)
    actual = file_checksums(folder, sorted({name.split("/", 1)[0] for name in files} | {DOCS_DIR, LEDGER_DIR}))
    missing = sorted(listed - set(actual))
    extra = sorted(set(actual) - listed)
    changed = sorted(n for n in listed & set(actual) if actual[n] != files[n])
    problems = [f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                for what, names in (("missing", missing), ("not written by the run", extra),
                                    ("changed since the run wrote it (size or checksum)", changed)) if names]
    if problems:
        raise OutputError(f"{folder}: the shards do not match what its run.json recorded ({'; '.join(problems)}), "
                          "so results read from it could be wrong: run the job again into this folder (a rerun "
                          "rewrites every shard), or restore the folder from a backup")


def new_run_id() -> str:
    """A sortable, unique name for one run: UTC time, pid and a random suffix (runs of one process in one second)."""
    import time

    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def clean_leftovers(out: str, say) -> None:
    """Before a run (with the output's lock held): remove the staging of runs that died and runs that are not
    `current` (a run killed between its publish and the removal of the previous one), each with a message."""
    staging = os.path.join(out, STAGING_DIR)
    if os.path.isdir(staging):
        for name in sorted(os.listdir(staging)):
            say(f"removed {os.path.join(staging, name)}: left by a run that did not finish (never published)")
            path = os.path.join(staging, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    runs = os.path.join(out, RUNS_DIR)
    current = published_run(out) if os.path.lexists(os.path.join(out, CURRENT)) else None
    if os.path.isdir(runs):
        for name in sorted(os.listdir(runs)):
            path = os.path.join(runs, name)
            if os.path.realpath(path) != current:
                say(f"removed {path}: a run that is no longer the current one")
                shutil.rmtree(path, ignore_errors=True)


def publish_run(staged: str, out: str, run_id: str) -> str:
    """Publish the finished run folder `staged` (docs/ rejected/ stats/ run.json) as the output of `out`: move it
    to out/runs/RUN_ID, switch out/current to it in one step, make sure the fixed links exist, then remove the
    previous run. Returns the published folder."""
    runs = os.path.join(out, RUNS_DIR)
    os.makedirs(runs, exist_ok=True)
    final = os.path.join(runs, run_id)
    os.rename(staged, final)
    previous = published_run(out) if os.path.lexists(os.path.join(out, CURRENT)) else None
    switch_link(os.path.join(out, CURRENT), os.path.join(RUNS_DIR, run_id))  # the switch
    for name in LINKED:
        link, target = os.path.join(out, name), os.path.join(CURRENT, name)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.isdir(link) and not os.path.islink(link):  # an output of the older layout: its folder goes
            old = os.path.join(out, STAGING_DIR, f"old-{name}-{uuid.uuid4().hex}")
            os.makedirs(os.path.dirname(old), exist_ok=True)
            os.rename(link, old)
            shutil.rmtree(old, ignore_errors=True)
        switch_link(link, target)
    if previous and previous != os.path.realpath(final) and previous.startswith(os.path.realpath(runs) + os.sep):
        shutil.rmtree(previous, ignore_errors=True)
    return final
