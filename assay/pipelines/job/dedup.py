"""Global deduplication in Beam: exact (content hash) and fuzzy (MinHash-LSH + connected components).

Exact: group by normalized-content hash; keep the smallest id. Fuzzy: every document emits its band
keys; documents sharing a band key are linked; the links (few: only duplicates make them) are clustered
with union-find in one place; each cluster keeps its smallest id. Both choices are independent of worker
count and processing order, so every run keeps the same documents.

Reference documents (e.g. web pages that generated text must not repeat) can join the dedup: they carry an
id prefix that sorts before any other id, so a cluster holding one keeps it and drops the others, and they
leave after the dedup (never output, never counted).
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.pvalue import TaggedOutput

from assay.curation.dedup import EXACT_DEDUP, FUZZY_DEDUP, MinHashConfig, MinHasher, connected_components
from assay.curation.document import Document, Rejection, content_hash
from assay.pipelines.job.beam_fns import REJECTED, Counters, split_outputs, utf8_len

#: id prefix of reference documents: sorts before any other id, so a duplicate of one is what gets dropped
REFERENCE_ID_PREFIX = "!ref:"
EXACT_COLUMNS = {"content_hash": pa.string(), "exact_dup_count": pa.int64()}
FUZZY_COLUMNS = {"minhash_cluster": pa.string(), "minhash_cluster_size": pa.int64()}


class _KeepFirstExact(beam.DoFn):
    def setup(self) -> None:
        self.counters = Counters(EXACT_DEDUP)

    def process(self, element):
        digest, docs = element
        docs = sorted(docs, key=lambda d: d.id)
        keep = docs[0]
        for doc in docs:
            if not is_reference(doc):
                self.counters.seen(utf8_len(doc.text))
        if not is_reference(keep):
            self.counters.kept(utf8_len(keep.text))
        yield keep.with_meta(content_hash=digest, exact_dup_count=len(docs))
        for dup in docs[1:]:
            if is_reference(dup):
                continue
            self.counters.rejected("exact_duplicate", utf8_len(dup.text))
            yield TaggedOutput(REJECTED, Rejection.of(dup, EXACT_DEDUP, "exact_duplicate",
                                                      detail=f"duplicate of {keep.id}", duplicate_of=keep.id,
                                                      content_hash=digest))


class ExactDedup(beam.PTransform):
    """docs -> (kept, rejected): one document per normalized-content hash."""

    def expand(self, docs):
        out = (
            docs
            | "exact:key" >> beam.Map(lambda d: (content_hash(d.text), d))
            | "exact:group" >> beam.GroupByKey()
            | "exact:pick" >> beam.ParDo(_KeepFirstExact()).with_outputs(REJECTED, main="kept")
        )
        return split_outputs(out, "exact")


class _BandKeys(beam.DoFn):
    def __init__(self, cfg: MinHashConfig):
        self.cfg = cfg

    def setup(self) -> None:
        self.hasher = MinHasher(self.cfg)

    def process(self, doc: Document):
        for key in self.hasher.band_keys(doc.text):
            yield key, doc.id


def _bucket_edges(element):
    """A bucket of ids sharing a band key -> edges from its smallest id to each other id."""
    _, ids = element
    ids = sorted(set(ids))
    return [(ids[0], other) for other in ids[1:]]


def _clusters(edges: list[tuple[str, str]]):
    """All duplicate edges -> (id, (representative, cluster size)) for every clustered id."""
    reps = connected_components(edges)
    sizes: dict[str, int] = {}
    for rep in reps.values():
        sizes[rep] = sizes.get(rep, 0) + 1
    return [(node, (rep, sizes[rep])) for node, rep in sorted(reps.items())]


class _ApplyClusters(beam.DoFn):
    def setup(self) -> None:
        self.counters = Counters(FUZZY_DEDUP)

    def process(self, element):
        doc_id, grouped = element
        cluster = list(grouped["cluster"])
        rep, size = cluster[0] if cluster else (None, 1)
        for doc in grouped["doc"]:
            if is_reference(doc):
                if rep is None or rep == doc.id:
                    yield doc  # dropped after the dedup; a reference's near-duplicates among references don't matter
                continue
            nbytes = utf8_len(doc.text)
            self.counters.seen(nbytes)
            if rep is None or rep == doc.id:
                self.counters.kept(nbytes)
                yield doc.with_meta(minhash_cluster=rep, minhash_cluster_size=size)
            else:
                self.counters.rejected("near_duplicate", nbytes)
                yield TaggedOutput(REJECTED, Rejection.of(doc, FUZZY_DEDUP, "near_duplicate",
                                                          detail=f"near-duplicate of {rep}",
                                                          minhash_cluster=rep, minhash_cluster_size=size))


class FuzzyDedup(beam.PTransform):
    """docs -> (kept, rejected): MinHash-LSH candidates, clustered globally, one representative per cluster."""

    def __init__(self, cfg: MinHashConfig | None = None):
        super().__init__()
        self.cfg = cfg or MinHashConfig()

    def expand(self, docs):
        edges = (
            docs
            | "fuzzy:bands" >> beam.ParDo(_BandKeys(self.cfg))
            | "fuzzy:group" >> beam.GroupByKey()
            | "fuzzy:edges" >> beam.FlatMap(_bucket_edges)
            | "fuzzy:distinct" >> beam.Distinct()
        )
        clusters = (
            edges
            | "fuzzy:collect" >> beam.combiners.ToList()
            | "fuzzy:components" >> beam.FlatMap(_clusters)
        )
        keyed = docs | "fuzzy:by_id" >> beam.Map(lambda d: (d.id, d))
        out = (
            {"doc": keyed, "cluster": clusters}
            | "fuzzy:join" >> beam.CoGroupByKey()
            | "fuzzy:apply" >> beam.ParDo(_ApplyClusters()).with_outputs(REJECTED, main="kept")
        )
        return split_outputs(out, "fuzzy")


def is_reference(doc) -> bool:
    return doc.id.startswith(REFERENCE_ID_PREFIX)


class _ReadReference(beam.DoFn):
    """A document shard -> its Documents (id, text, source, url) as dedup references."""

    def process(self, path: str):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(columns=["id", "text", "source", "url"], batch_size=2048):
            for row in batch.to_pylist():
                yield Document(id=REFERENCE_ID_PREFIX + str(row["id"]), text=row["text"] or "",
                               source=row["source"] or "", url=row["url"] or "")


def dedup(docs, exact: bool = True, fuzzy: bool = True, minhash: MinHashConfig | None = None,
          reference_files: list[str] | None = None):
    """docs -> (kept, [exact drops, near drops]): exact, then MinHash dedup, optionally against the documents
    of `reference_files` (document shards), which only serve as references."""
    rejected = []
    if reference_files:
        refs = (docs.pipeline | "reference:files" >> beam.Create(list(reference_files))
                | "reference:read" >> beam.ParDo(_ReadReference()))
        docs = (docs, refs) | "reference:join" >> beam.Flatten()
    if exact:
        docs, dropped = docs | EXACT_DEDUP >> ExactDedup()
        rejected.append(dropped)
    if fuzzy:
        docs, dropped = docs | FUZZY_DEDUP >> FuzzyDedup(minhash or MinHashConfig())
        rejected.append(dropped)
    if reference_files:
        docs = docs | "reference:leave" >> beam.Filter(lambda d: not is_reference(d)).with_output_types(Document)
    return docs, rejected
