"""Beam adapters: run curation Stages, a reader or a shard reader as a DoFn with a ledger output, metrics and
progress.

Per-document stages run fused in one DoFn (StageChainFn). Every stage counts documents and UTF-8 bytes in
and out, and every drop by reason, as Beam counters in the "assay" namespace; the funnel is built from those
counters. A stage that raises on a document sends that document to the ledger ("stage_error") instead of
failing the run; one that takes longer than the chain's time limit on a document sends it there as "timeout".
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from assay.curation.document import Document, Rejection, stable_id
from assay.curation.readers.quarantine import STAGE as READ_STAGE
from assay.curation.stage import Stage
from assay.groundwork.atomic import atomic_path

REJECTED = "rejected"
NAMESPACE = "assay"


class Progress:
    """Per-worker counts flushed to a small JSON file at most once a second, for the local progress view."""

    def __init__(self, directory: str | None, stage: str):
        self.directory, self.stage = directory, stage
        self.done = self.kept = 0
        self._last = 0.0
        self._path = None

    def tick(self, kept: bool) -> None:
        self.done += 1
        self.kept += int(kept)
        if self.directory and time.monotonic() - self._last > 1.0:
            self.flush()

    def flush(self) -> None:
        if not self.directory:
            return
        if self._path is None:
            self._path = os.path.join(self.directory, f"{self.stage.replace(':', '_')}.{os.getpid()}.{id(self)}.json")
        with atomic_path(self._path) as tmp, open(tmp, "w") as fh:
            json.dump({"stage": self.stage, "done": self.done, "kept": self.kept}, fh)
        self._last = time.monotonic()


def utf8_len(text: str | None) -> int:
    return len(text.encode("utf-8", "surrogatepass")) if text else 0


_recording = threading.local()


@contextlib.contextmanager
def recording():
    """Every funnel counter increment made in this thread inside the block, as {counter name: total} (a resumable
    work unit saves them with its outputs: assay/pipelines/job/resume.py)."""
    _recording.deltas = deltas = {}
    try:
        yield deltas
    finally:
        _recording.deltas = None


class _Counter:
    """A Beam counter of the funnel that also reports to `recording`."""

    def __init__(self, name: str):
        self.name, self.counter = name, Metrics.counter(NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self.counter.inc(n)
        deltas = getattr(_recording, "deltas", None)
        if deltas is not None:
            deltas[self.name] = deltas.get(self.name, 0) + n


class Counters:
    """A stage's funnel counters (Beam metrics `STAGE|docs_in` ..., read by assay/pipelines/job/funnel.py): every
    document the stage sees, then each one it keeps or drops with the rejection's reason. The one way steps
    count; the stage's name is given once, here."""

    def __init__(self, stage: str):
        self.stage = stage
        self.docs_in = _Counter(f"{stage}|docs_in")
        self.bytes_in = _Counter(f"{stage}|bytes_in")
        self.docs_out = _Counter(f"{stage}|docs_out")
        self.bytes_out = _Counter(f"{stage}|bytes_out")
        self._reasons: dict[str, object] = {}

    def seen(self, nbytes: int = 0, docs: int = 1) -> None:
        """`docs` documents of `nbytes` bytes in all came into the stage."""
        self.docs_in.inc(docs)
        self.bytes_in.inc(nbytes)

    def kept(self, nbytes: int = 0, docs: int = 1) -> None:
        """`docs` documents of `nbytes` bytes in all left the stage kept."""
        self.docs_out.inc(docs)
        self.bytes_out.inc(nbytes)

    def passed(self, nbytes: int = 0) -> None:
        """One document came in and was kept, `nbytes` bytes both ways."""
        self.seen(nbytes)
        self.kept(nbytes)

    def rejected(self, reason: str, nbytes: int) -> None:
        """One document dropped for `reason` (its ledger record's reason)."""
        if reason not in self._reasons:
            self._reasons[reason] = (_Counter(f"{self.stage}|rejected|{reason}"),
                                     _Counter(f"{self.stage}|rejected_bytes|{reason}"))
        docs, size = self._reasons[reason]
        docs.inc()
        size.inc(nbytes)


class StageChainFn(beam.DoFn):
    """Runs Stages in order on each document in one DoFn: one Beam element hop for the whole chain.

    Each stage keeps its own counters and progress, and a document a stage drops leaves the chain at that
    stage with the same Rejection a separate DoFn would have sent, so the funnel and the ledger are the
    same as with one DoFn per stage. Kept documents go to the main output, Rejections to "rejected".
    """

    def __init__(self, stages: list[Stage], progress_dir: str | None = None, timeout_s: float = 0.0):
        if not stages:
            raise ValueError("StageChainFn needs at least one stage")
        self.stages = list(stages)
        self.progress_dir = progress_dir
        self.timeout_s = timeout_s  # per stage and document; 0 = none

    def setup(self) -> None:
        for stage in self.stages:
            stage.setup()
        self.counters = [Counters(stage.name) for stage in self.stages]
        self.progress = [Progress(self.progress_dir, stage.name) for stage in self.stages]

    def process(self, doc: Document):
        nbytes = utf8_len(doc.text)  # re-measured only when a stage changes the text
        for stage, c, progress in zip(self.stages, self.counters, self.progress):
            c.seen(nbytes)
            try:
                out = stage.process_limited(doc, self.timeout_s)
            except Exception as exc:  # one bad document must not stop the run: it goes to the ledger
                out = Rejection.of(doc, stage.name, "stage_error",
                                   detail=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
            if isinstance(out, Rejection):
                c.rejected(out.reason, nbytes)
                progress.tick(kept=False)
                yield TaggedOutput(REJECTED, out)
                return
            if out.text is not doc.text:
                nbytes = utf8_len(out.text)
            c.kept(nbytes)
            progress.tick(kept=True)
            doc = out
        yield doc.without_prose()

    def teardown(self) -> None:
        for progress in getattr(self, "progress", []):
            progress.flush()


class ReadFn(beam.DoFn):
    """Reads one input unit (a file, or a range of one: assay/curation/readers/units.py) into Documents and
    read-stage Rejections."""

    def __init__(self, reader_cfg, progress_dir: str | None = None):
        self.reader_cfg = reader_cfg
        self.progress_dir = progress_dir

    def setup(self) -> None:
        self.counters = Counters(READ_STAGE)
        self.progress = Progress(self.progress_dir, READ_STAGE)

    def process(self, element):
        from assay.curation.readers import Unit, read_input
        from assay.curation.readers.files import shown_name

        unit = element if isinstance(element, Unit) else Unit(element)
        path = unit.name  # a local name may travel as its bytes (InputFiles): any bytes, not only UTF-8
        where = "" if unit.whole else f"@{unit.start}"
        c = self.counters
        try:
            for item in read_input(unit, self.reader_cfg):
                if isinstance(item, Rejection):
                    size = item.signals.get("bytes") if isinstance(item.signals.get("bytes"),
                                                                   int) else utf8_len(item.text)
                    c.seen(size)
                    c.rejected(item.reason, size)
                    self.progress.tick(kept=False)
                    yield TaggedOutput(REJECTED, item)
                else:
                    c.passed(utf8_len(item.text))
                    self.progress.tick(kept=True)
                    yield item
        except Exception as exc:  # the reader promises not to raise; if it does, the file is quarantined
            c.seen()
            c.rejected("unreadable_file", 0)
            yield TaggedOutput(REJECTED, Rejection(stage=READ_STAGE, reason="unreadable_file", source=shown_name(path),
                                                   id=f"file:{shown_name(path)}{where}",
                                                   detail=shown_name(f"{type(exc).__name__}: {exc}")))

    def teardown(self) -> None:
        if hasattr(self, "progress"):
            self.progress.flush()


class ReadShardFn(beam.DoFn):
    """One Parquet document shard -> Documents with all their signal columns; an unreadable shard (or the rest
    of it) goes to the ledger as "unreadable_shard" instead of failing the run."""

    def __init__(self, progress_dir: str | None = None):
        self.progress_dir = progress_dir

    def setup(self) -> None:
        self.counters = Counters(READ_STAGE)
        self.progress = Progress(self.progress_dir, READ_STAGE)

    def process(self, path: str):
        import pyarrow.parquet as pq

        c, done = self.counters, 0
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
                for row in batch.to_pylist():
                    done += 1
                    doc = Document.from_row(row)
                    c.passed(utf8_len(doc.text))
                    self.progress.tick(kept=True)
                    yield doc
        except Exception as exc:  # corrupt or truncated file: record it, keep reading the other shards
            c.seen()
            c.rejected("unreadable_shard", 0)
            yield TaggedOutput(REJECTED, Rejection(stage=READ_STAGE, reason="unreadable_shard", source=path,
                                                   id=stable_id(path, "shard"),
                                                   detail=f"after {done} rows: {type(exc).__name__}: {exc}"))

    def teardown(self) -> None:
        if hasattr(self, "progress"):
            self.progress.flush()


def split_outputs(out, label: str, main: str = "kept", main_type=Document):
    """(main, rejected) of a `with_outputs` result, each filtered by type and declared as such (Beam's type
    inference cannot see through TaggedOutput). The DaskRunner hands every consumer of a multi-output ParDo
    the whole output, main and tagged mixed; elsewhere the filters pass everything."""
    kept = (out[main] | f"{label}:only_docs" >> beam.Filter(lambda x: not isinstance(x, Rejection))
            .with_output_types(main_type))
    rejected = (out[REJECTED] | f"{label}:only_rejections" >> beam.Filter(lambda x: isinstance(x, Rejection))
                .with_output_types(Rejection))
    return kept, rejected
