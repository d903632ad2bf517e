"""Global deduplication in Beam: exact (content hash) and fuzzy (MinHash-LSH + connected components).

Exact: group by normalized-content hash; keep the smallest id. Fuzzy: every document emits its band
keys; documents sharing a band key are linked; the links (few: only duplicates make them) are clustered
with union-find in one place; each cluster keeps its smallest id. Both choices are independent of worker
count and processing order, so every run keeps the same documents.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.pvalue import TaggedOutput

from curation.dedup import MinHashConfig, MinHasher, connected_components
from curation.document import Document, Rejection, content_hash
from pipelines.job.beam_fns import REJECTED, Counters, split_outputs

EXACT_COLUMNS = {"content_hash": pa.string(), "exact_dup_count": pa.int64()}
FUZZY_COLUMNS = {"minhash_cluster": pa.string(), "minhash_cluster_size": pa.int64()}


class _KeepFirstExact(beam.DoFn):
    def setup(self) -> None:
        self.counters = Counters("exact_dedup")

    def process(self, element):
        digest, docs = element
        docs = sorted(docs, key=lambda d: d.id)
        keep = docs[0]
        for doc in docs:
            self.counters.docs_in.inc()
            self.counters.bytes_in.inc(len(doc.text.encode("utf-8", "surrogatepass")))
        self.counters.docs_out.inc()
        self.counters.bytes_out.inc(len(keep.text.encode("utf-8", "surrogatepass")))
        yield keep.with_meta(content_hash=digest, exact_dup_count=len(docs))
        for dup in docs[1:]:
            self.counters.rejected("exact_duplicate", len(dup.text.encode("utf-8", "surrogatepass")))
            yield TaggedOutput(REJECTED, Rejection.of(dup, "exact_dedup", "exact_duplicate",
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
        self.counters = Counters("fuzzy_dedup")

    def process(self, element):
        doc_id, grouped = element
        cluster = list(grouped["cluster"])
        rep, size = cluster[0] if cluster else (None, 1)
        for doc in grouped["doc"]:
            nbytes = len(doc.text.encode("utf-8", "surrogatepass"))
            self.counters.docs_in.inc()
            self.counters.bytes_in.inc(nbytes)
            if rep is None or rep == doc.id:
                self.counters.docs_out.inc()
                self.counters.bytes_out.inc(nbytes)
                yield doc.with_meta(minhash_cluster=rep, minhash_cluster_size=size)
            else:
                self.counters.rejected("near_duplicate", nbytes)
                yield TaggedOutput(REJECTED, Rejection.of(doc, "fuzzy_dedup", "near_duplicate",
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
