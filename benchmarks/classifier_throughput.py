"""Classifier throughput, docs/s per core, on ~3 KB documents: each kind scored inside the Beam stage
(RunInference, one in-memory worker) against a plain loop over batches in this process (the peer).

    .venv/bin/python benchmarks/classifier_throughput.py [--fasttext-docs 50000] [--encoder-docs 600]

Documents are ~3 KB slices of the sample corpus pages (reference docs as positives, spam and index pages as
negatives); both models are trained on them first. One core: the Beam runner runs one worker, torch uses
one thread. Prints docs/s for each way and the pipeline's ratio to the loop.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample")
DOC_BYTES = 3000


def sample_chunks(limit_pages: int = 160) -> list[tuple[str, float]]:
    """(text of ~3 KB, label) slices of sample pages."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    with open(os.path.join(SAMPLE, "manifest.jsonl"), encoding="utf-8") as fh:
        category = {r["url"]: r["category"] for r in map(json.loads, fh)}
    chunks, pages = [], 0
    for path in sorted(glob.glob(os.path.join(SAMPLE, "*.warc.gz"))):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                url = rec.rec_headers.get_header("WARC-Target-URI")
                cat = category.get(url)
                if rec.rec_type != "response" or cat not in ("doc", "spam", "index") or pages >= limit_pages:
                    continue
                text = trafilatura.extract(rec.content_stream().read().decode("utf-8", "replace")) or ""
                pages += 1
                for start in range(0, max(len(text) - DOC_BYTES // 2, 1), DOC_BYTES):
                    piece = text[start:start + DOC_BYTES]
                    if len(piece) > 500:
                        chunks.append((piece, float(cat == "doc")))
    return chunks


def train_models(chunks, workdir: str) -> dict[str, str]:
    import pyarrow as pa

    from assay.classifiers.config import ClassifierTrainConfig, EncoderConfig, SplitConfig
    from assay.classifiers.labels import LabelSpec, build_labels
    from assay.classifiers.train import train
    from assay.curation.document import Document
    from assay.curation.shards import doc_schema, rows_to_table, write_table_atomic

    docs = [Document(f"d{i}", t, "bench", f"https://bench/{i}", meta={"ref": y}) for i, (t, y) in enumerate(chunks)]
    write_table_atomic(rows_to_table([d.to_row() for d in docs], doc_schema({"ref": pa.float64()})),
                       f"{workdir}/shards/part-00000-of-00001.parquet")
    build_labels(f"{workdir}/shards", LabelSpec(kind="reference", positive_where="ref = 1"), f"{workdir}/labels",
                 SplitConfig())
    models = {}
    for kind in ("fasttext", "encoder"):
        models[kind] = f"{workdir}/{kind}"
        train(f"{workdir}/labels", ClassifierTrainConfig(kind=kind, encoder=EncoderConfig(threads=1)), models[kind])
    return models


def loop_rate(model_dir: str, texts: list[str], batch: int) -> float:
    from assay.classifiers.artifact import load_model

    clf, _ = load_model(model_dir)
    clf.score(texts[:batch])  # warm
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        clf.score(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - start)


_TEXTS: dict[str, list[str]] = {}


def _texts_at(path: str) -> list[str]:
    """The benchmark texts, read once per worker (kept out of the pickled pipeline graph)."""
    if path not in _TEXTS:
        with open(path, encoding="utf-8") as fh:
            _TEXTS[path] = json.load(fh)
    return _TEXTS[path]


def beam_rate(model_dir: str, texts: list[str], n: int, batch: int) -> tuple[float, float]:
    """(docs/s over the whole pipeline run, docs/s after subtracting the same pipeline without scoring)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from assay.classifiers.scoring import ClassifierStageConfig
    from assay.curation.document import Document
    from assay.pipelines.job.classifier_scores import apply_classifier_stage

    per = 1000
    texts_path = os.path.join(model_dir, os.pardir, "bench-texts.json")
    with open(texts_path, "w", encoding="utf-8") as fh:
        json.dump(list(texts), fh)

    def make(block: int):
        base = _texts_at(texts_path)
        for i in range(block * per, min(n, (block + 1) * per)):
            yield Document(f"b{i}", base[i % len(base)])

    def run(score: bool) -> float:
        options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
        start = time.perf_counter()
        with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
            docs = p | beam.Create(list(range((n + per - 1) // per))) | beam.FlatMap(make)
            if score:
                cfg = ClassifierStageConfig(model_dir, "bench", mode="annotate", max_batch_size=batch)
                docs, _ = apply_classifier_stage(docs, cfg)
            _ = docs | beam.combiners.Count.Globally()
        return time.perf_counter() - start

    scored, empty = run(True), run(False)
    return n / scored, n / max(scored - empty, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasttext-docs", type=int, default=50_000)
    ap.add_argument("--encoder-docs", type=int, default=600)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    chunks = sample_chunks()
    texts = [t for t, _ in chunks]
    mean_bytes = sum(len(t.encode()) for t in texts) / len(texts)
    print(f"{len(texts)} distinct documents, mean {mean_bytes:.0f} bytes; one core (1 Beam worker, 1 torch thread)")
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as workdir:
        models = train_models(chunks, workdir)
        for kind, n, batch in (("fasttext", args.fasttext_docs, 1024), ("encoder", args.encoder_docs, 64)):
            pool = (texts * (n // len(texts) + 1))[:n]
            loop = loop_rate(models[kind], pool, batch)
            whole, steady = beam_rate(models[kind], texts, n, batch)
            print(f"{kind:9s} plain loop {loop:9.0f} docs/s | Beam stage {whole:9.0f} docs/s "
                  f"(ratio {whole / loop:.2f}) | Beam minus its empty-pipeline time {steady:9.0f} docs/s "
                  f"(ratio {steady / loop:.2f})  [{n} docs]")


if __name__ == "__main__":
    main()
