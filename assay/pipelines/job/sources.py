"""Where a ShardJob's elements come from: raw input files (WARC, HTML, JSONL, Parquet) through curation's
readers, document shards written by an earlier job, or work items made on the driver. Each source lists
what it reads on the driver (so a wrong path fails before the pipeline starts), says which signal columns
its documents carry, and builds the head of the pipeline: (elements, [ledger records]).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import apache_beam as beam
import pyarrow as pa

from assay.curation.readers import ReaderConfig
from assay.curation.readers.quarantine import STAGE as READ_STAGE
from assay.pipelines.job.beam_fns import REJECTED, ReadFn, ReadShardFn, split_outputs
from assay.pipelines.job.steps import StepContext


class Source(ABC):
    #: the funnel's first stage: its counters count what was read
    names: tuple[str, ...] = (READ_STAGE,)
    #: ids come from many independent files (a JSONL "id" field restarting at 1 in each): an id found in more
    #: than one file is qualified with its file's name before the shards are written (QualifyIds)
    ids_per_file: ClassVar[bool] = False

    def columns(self) -> dict[str, pa.DataType]:
        """The signal columns the documents carry when they enter the job."""
        return {}

    @abstractmethod
    def expand(self, p, ctx: StepContext):
        """(elements PCollection, [PCollections of Rejections])"""


@dataclass
class InputFiles(Source):
    """Files, folders and globs (local or remote) read by curation's readers as work units: a file, or a range of
    a large one (assay/curation/readers/units.py), so one big file keeps every worker busy; unreadable records go
    to the ledger with stage "read"."""

    paths: list[str]
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    #: worker processes: a file gets at least 4 units per worker when that keeps units over MIN_UNIT_BYTES
    workers: int = 1
    ids_per_file: ClassVar[bool] = True

    def units(self, p):
        """The work units, spread over the workers: files are listed on the driver, planned into units on the
        workers (a plan reads a large JSONL or WARC.gz once), and the units spread again."""
        from assay.curation.readers import expand_inputs

        return (p
                | "inputs" >> beam.Create([_as_element(f) for f in expand_inputs(self.paths, self.reader)])
                | "inputs:spread" >> beam.Reshuffle()
                | "units" >> beam.FlatMap(plan_file, self.reader, self.workers)
                | "spread" >> beam.Reshuffle())

    def expand(self, p, ctx: StepContext):
        read = (self.units(p)
                | "read" >> beam.ParDo(ReadFn(self.reader, ctx.progress_dir)).with_outputs(REJECTED, main="docs"))
        docs, rejected = split_outputs(read, "read", main="docs")
        return docs, [rejected]

    def expand_units(self, p, ctx: StepContext, chain, folder: str):
        """Like `expand` followed by the PerDocument step `chain` (or None), as resumable work units: each unit
        read and run through the chain in one DoFn whose outputs are saved in `folder` when the unit is done
        (assay/pipelines/job/resume.py)."""
        from assay.pipelines.job.beam_fns import NAMESPACE, StageChainFn
        from assay.pipelines.job.resume import UnitFn

        chain_fn = StageChainFn(chain.stages, ctx.progress_dir, ctx.stage_timeout_s) if chain else None
        label = "read" + ("+stages:" + "+".join(chain.names) if chain else "")
        out = (self.units(p)
               | label >> beam.ParDo(UnitFn(ReadFn(self.reader, ctx.progress_dir), chain_fn, folder, NAMESPACE))
               .with_outputs(REJECTED, main="docs"))
        docs, rejected = split_outputs(out, label, main="docs")
        return docs, [rejected]


#: the smallest unit the per-worker sizing makes (reader.unit_bytes is the largest)
MIN_UNIT_BYTES = 1 << 20


def unit_size(file_bytes: int, reader: ReaderConfig, workers: int) -> int:
    """The unit size for a file: reader.unit_bytes, smaller when that would give a file fewer than 4 units per
    worker, but not under MIN_UNIT_BYTES; 0 (reader.unit_bytes = 0): files are not split."""
    if reader.unit_bytes == 0:
        return 0
    return min(reader.unit_bytes, max(MIN_UNIT_BYTES, -(-file_bytes // (4 * max(1, workers)))))


def plan_file(path, reader: ReaderConfig, workers: int = 1):
    """One input file -> its work units (a file whose size cannot be read is one unit: its reader reports it)."""
    from assay.curation.readers import plan_units
    from assay.curation.readers.files import size_of
    from assay.curation.readers.units import Unit

    if reader.unit_bytes == 0:
        return [Unit(path)]
    try:
        size = size_of(os.fsdecode(path) if isinstance(path, bytes) else path)
    except Exception:
        return [Unit(path)]
    return plan_units(path, reader, unit_size(size, reader, workers))


class QualifyIds(beam.PTransform):
    """(kept documents, ledger records) -> the same with every id that occurs in more than one input file made
    "<file>#<id>", in both: ids stay unique across files while an id used by one file only is kept as it is.
    Runs on what is about to be written (only the ids and file names are grouped), so the crawl's raw pages are
    not held for it."""

    def expand(self, pcolls):
        docs, ledger = pcolls
        pairs = ((docs | "ids:docs" >> beam.Map(lambda d: (d.id, d.source)),
                  ledger | "ids:ledger" >> beam.Map(lambda r: (r.id, r.source)))
                 | "ids:all" >> beam.Flatten()
                 | "ids:distinct" >> beam.Distinct())
        shared = (pairs
                  | "ids:files" >> beam.combiners.Count.PerKey()
                  | "ids:shared" >> beam.Filter(lambda kv: kv[1] > 1)
                  | "ids:keys" >> beam.Keys())
        colliding = beam.pvalue.AsList(shared)
        return (docs | "ids:qualify_docs" >> beam.Map(_qualified, colliding),
                ledger | "ids:qualify_ledger" >> beam.Map(_qualified, colliding))


def _qualified(record, colliding: list[str]):
    if not colliding or record.id not in set(colliding):
        return record
    import dataclasses

    return dataclasses.replace(record, id=f"{record.source}#{record.id}")


def _as_element(path: str) -> str | bytes:
    """A file name Beam can carry: a local name that is not UTF-8 travels as its bytes (ReadFn decodes it)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


class DocumentShards(Source):
    """Document shards of an earlier job (an output folder, its docs/ folder or one shard) with all their
    signal columns; an unreadable shard goes to the ledger as "unreadable_shard"."""

    def __init__(self, path: str, label: str = "read"):
        from assay.curation.shards import document_shards

        self.path, self.label = path, label
        self.files = document_shards(path)  # on the driver: a folder without shards fails here

    def columns(self) -> dict[str, pa.DataType]:
        """Every input shard's signal columns (an unreadable shard is skipped: its reader ledgers it)."""
        import pyarrow.parquet as pq

        from assay.curation.document import DOC_COLUMNS

        found: dict[str, pa.DataType] = {}
        for path in self.files:
            try:
                schema = pq.read_schema(path)
            except Exception:
                continue
            found.update({f.name: f.type for f in schema if f.name not in DOC_COLUMNS})
        return found

    def expand(self, p, ctx: StepContext):
        read = (p
                | f"{self.label}:files" >> beam.Create(self.files)
                | f"{self.label}:spread" >> beam.Reshuffle()
                | self.label >> beam.ParDo(ReadShardFn(ctx.progress_dir)).with_outputs(REJECTED, main="docs"))
        docs, rejected = split_outputs(read, self.label, main="docs")
        return docs, [rejected]


@dataclass
class Items(Source):
    """Work items listed on the driver (a generator's requests, exercise specs, documents)."""

    names: ClassVar[tuple[str, ...]] = ()  # made, not read: nothing to count
    items: list
    label: str = "items"
    spread: bool = False  # reshuffle them over the workers (items that are slow one by one)
    item_type: Any = Any  # their Beam type hint (Beam cannot infer one from a list)

    def expand(self, p, ctx: StepContext):
        items = p | self.label >> beam.Create(self.items, reshuffle=False).with_output_types(self.item_type)
        if self.spread:
            items = items | f"{self.label}:spread" >> beam.Reshuffle()
        return items, []


class Piped(Source):
    """A source's elements through steps of their own, before they join the others (e.g. web pages read from
    shards and turned into generation requests)."""

    def __init__(self, source: Source, *steps):
        self.source, self.steps = source, list(steps)
        self.names = (*source.names, *(n for step in self.steps for n in step.names))

    def columns(self) -> dict[str, pa.DataType]:
        return self.source.columns()

    def expand(self, p, ctx: StepContext):
        items, rejected = self.source.expand(p, ctx)
        for step in self.steps:
            items, dropped = step.expand(items, ctx)
            rejected = rejected + dropped
        return items, rejected


class AllOf(Source):
    """Several sources' elements as one collection (e.g. topic requests and page requests)."""

    def __init__(self, *sources: Source | None):
        self.sources = [s for s in sources if s is not None]
        self.names = tuple(dict.fromkeys(n for s in self.sources for n in s.names))

    def columns(self) -> dict[str, pa.DataType]:
        return {k: v for s in self.sources for k, v in s.columns().items()}

    def expand(self, p, ctx: StepContext):
        parts, rejected = [], []
        for source in self.sources:
            items, dropped = source.expand(p, ctx)
            parts.append(items)
            rejected += dropped
        if len(parts) == 1:
            return parts[0], rejected
        return tuple(parts) | "sources" >> beam.Flatten(), rejected

