"""Resume after a kill: each work unit (an input file, or a range of a large one: assay/curation/readers/units.py)
is read and run through the job's leading per-document stages in one DoFn, and what came out of it (documents,
ledger records, and the funnel counters they moved) is saved to OUT/.resume/<job fingerprint>/ the moment the
unit is done. A rerun of the same job on the same files replays the saved units instead of reading them again,
so a kill costs at most the units in flight; the whole-collection steps (dedup, classifiers) then run on the
same documents, and the output is byte-identical to an uninterrupted run. The store is removed when the run
publishes.

A unit is known by its file's path, size and modification time and its range; the fingerprint covers the job's
name and settings (not where or on how many workers it runs), so a changed config or a changed file is never
replayed.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import threading
from collections.abc import Iterator

import apache_beam as beam
import zstandard
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from assay.pipelines.job.beam_fns import REJECTED, recording

RESUME_DIR = ".resume"


def fingerprint(job: str, settings: dict, stage_names: list[str]) -> str:
    """What must match for a saved unit to be replayed: the job, its settings except where it runs, its stages."""
    kept = {k: v for k, v in settings.items() if k not in ("runner", "output")}
    blob = json.dumps([job, kept, stage_names], sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def store_folder(out: str, job_fingerprint: str) -> str:
    return os.path.join(out, RESUME_DIR, job_fingerprint)


def prepare_store(out: str, job_fingerprint: str, say) -> str:
    """The store of this job in `out` (created); stores of other jobs or configs are removed with a message,
    and finished units of this one are announced."""
    root = os.path.join(out, RESUME_DIR)
    folder = store_folder(out, job_fingerprint)
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            if name != job_fingerprint:
                say(f"removed {os.path.join(root, name)}: finished input files of an interrupted run with other "
                    "settings, which this run cannot reuse")
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if ".unit.tmp-" in name:  # a file that was in flight when the run died: it is read again
            os.remove(os.path.join(folder, name))
    done = [n for n in os.listdir(folder) if n.endswith(".unit")]
    if done:
        say(f"resuming: {len(done)} work unit(s) (input files or ranges of one) finished by an interrupted run "
            f"are reused from {folder}; the others are read again")
    return folder


def remove_store(out: str) -> None:
    shutil.rmtree(os.path.join(out, RESUME_DIR), ignore_errors=True)


def unit_key(unit) -> str:
    """A unit's name in the store: its file's path, size and modification time (a changed file is read again),
    and for a range of a file (assay/curation/readers/units.py) the range."""
    from assay.curation.readers.units import Unit

    unit = unit if isinstance(unit, Unit) else Unit(unit)
    path = unit.name
    try:
        st = os.stat(path)
        ident = [os.fsencode(path).hex(), st.st_size, st.st_mtime_ns]
    except OSError:
        ident = [os.fsencode(path).hex(), None, None]  # unreadable now: the reader reports it each time
    if not unit.whole:
        ident += [unit.start, unit.end, unit.before]
    return hashlib.blake2b(json.dumps(ident).encode(), digest_size=16).hexdigest()


class _UnitUnpickler(pickle.Unpickler):
    """Loads only what a unit holds (Documents, Rejections, plain values, numpy scalars): a store in an output
    folder someone else handed over cannot run code."""

    ALLOWED = {("assay.curation.document", "Document"), ("assay.curation.document", "Rejection"),
               ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
               ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "scalar"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a resume unit may not hold {module}.{name}")
        return super().find_class(module, name)


def _load_unit(final: str) -> Iterator[tuple]:
    with open(final, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        unpickler = _UnitUnpickler(reader)
        while True:
            entry = unpickler.load()
            yield entry
            if entry[0] == "counters":
                return


def unit_is_whole(final: str) -> bool:
    """Whether a saved unit reads back to its end (checked before anything of it is replayed)."""
    try:
        for _ in _load_unit(final):
            pass
        return True
    except Exception:
        return False


class UnitFn(beam.DoFn):
    """One work unit: replayed from the store when an earlier run finished it, else read and run through the
    leading per-document stages (ReadFn then StageChainFn, as the pipeline without resume runs them), with
    its outputs streamed to a temporary file that is renamed into the store when the unit is done."""

    def __init__(self, read_fn, chain_fn, folder: str, namespace: str):
        self.read_fn, self.chain_fn, self.folder, self.namespace = read_fn, chain_fn, folder, namespace

    def setup(self) -> None:
        self.read_fn.setup()
        if self.chain_fn is not None:
            self.chain_fn.setup()

    def _outputs(self, unit):
        for item in self.read_fn.process(unit):
            if isinstance(item, TaggedOutput) or self.chain_fn is None:
                yield item
            else:
                yield from self.chain_fn.process(item)

    def process(self, unit):
        final = os.path.join(self.folder, unit_key(unit) + ".unit")
        if os.path.exists(final) and unit_is_whole(final):
            yield from self._replay(final)
            return
        tmp = f"{final}.tmp-{os.getpid()}-{threading.get_ident()}"
        with recording() as deltas, open(tmp, "wb") as raw:
            writer = zstandard.ZstdCompressor(level=3).stream_writer(raw)
            for out in self._outputs(unit):
                tagged = isinstance(out, TaggedOutput)
                pickle.dump((tagged, out.value if tagged else out), writer, protocol=pickle.HIGHEST_PROTOCOL)
                yield out
            pickle.dump(("counters", dict(deltas)), writer, protocol=pickle.HIGHEST_PROTOCOL)
            writer.flush(zstandard.FLUSH_FRAME)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)  # the unit is finished: a rerun replays it

    def _replay(self, final: str):
        for tagged, value in _load_unit(final):
            if tagged == "counters":
                for metric, n in value.items():
                    Metrics.counter(self.namespace, metric).inc(n)
                return
            yield TaggedOutput(REJECTED, value) if tagged else value

    def teardown(self) -> None:
        self.read_fn.teardown()
        if self.chain_fn is not None:
            self.chain_fn.teardown()
