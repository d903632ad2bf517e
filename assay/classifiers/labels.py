"""Labelled datasets for training classifiers, built from document shards with DuckDB.

Two label sources:
  rubric     a numeric 0-5 score column (e.g. `edu_score` from an LLM annotator) with its annotator column;
  reference  SQL predicates that pick reference documents (positives) and web documents (negatives),
             optionally over columns joined in from an annotation file keyed by url (e.g. a manifest).
Every row gets a split (train/valid/test) from a hash of its group: a SQL expression when given (a dedup
cluster column, or `coalesce(near_duplicate_of, url)` over a manifest), else the content hash, so copies
of one text never straddle splits.

A label dataset is a directory: labels.parquet (id, text, source, url, domain, group, split, label,
annotator) and labels.json (the spec, counts per split and label).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from assay.classifiers.config import SplitConfig
from assay.curation.document import content_hash, domain_of
from assay.curation.shards import document_shards
from assay.groundwork.atomic import write_bytes_atomic

LABELS_FILE = "labels.parquet"
SUMMARY_FILE = "labels.json"
SPLITS = ("train", "valid", "test")
#: labels from a rubric score column, or from SQL predicates over the shards (a reference set)
LabelKind = Literal["rubric", "reference"]
LABEL_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("url", pa.string()),
    ("domain", pa.string()), ("group", pa.string()), ("split", pa.string()), ("label", pa.float64()),
    ("annotator", pa.string()),
])


@dataclass
class LabelSpec:
    """What makes a label. kind 'rubric' needs score_column; kind 'reference' needs positive_where."""

    kind: LabelKind = "rubric"  # "rubric": labels from a score column; "reference": from SQL conditions
    score_column: str = "edu_score"  # rubric labels: the 0-5 score column of the shards
    annotator_column: str | None = None  # default: f"{score_column}_annotator" when that column exists
    positive_where: str | None = None  # DuckDB SQL over the shard (+ annotation) columns
    negative_where: str | None = None  # default: NOT (positive_where)
    annotations: str | None = None  # .jsonl/.json/.parquet/.csv file with a `url` column, joined on url
    group_by: str | None = None  # SQL expression, e.g. a dedup cluster column; default: the text's content hash

    def __post_init__(self) -> None:
        if self.kind not in get_args(LabelKind):
            raise ValueError(f"label kind must be {' or '.join(get_args(LabelKind))}, got {self.kind!r}")
        if self.kind == "rubric" and self.negative_where:
            raise ValueError("--negative needs --positive (reference labels); rubric labels use --score-column")
        if self.kind == "reference" and not self.positive_where:
            raise ValueError("reference labels need --positive WHERE (e.g. \"source = 'python-docs'\")")


def split_of(group: str, cfg: SplitConfig) -> str:
    u = int.from_bytes(hashlib.blake2b(f"{cfg.seed}\x00{group}".encode(), digest_size=8).digest(), "big") / 2**64
    if u < cfg.train:
        return "train"
    return "valid" if u < cfg.train + cfg.valid else "test"


def _reader_sql(path: str) -> str:
    ext = path.lower().rsplit(".", 1)[-1]
    quoted = "'" + path.replace("'", "''") + "'"
    if ext in ("jsonl", "json", "ndjson"):
        return f"read_json_auto({quoted})"
    if ext == "parquet":
        return f"read_parquet({quoted})"
    if ext == "csv":
        return f"read_csv_auto({quoted})"
    raise ValueError(f"annotation file {path!r}: use .jsonl, .json, .parquet or .csv with a `url` column")


def select_labelled(shards: str | list[str], spec: LabelSpec) -> tuple[pa.Table, dict[str, Any]]:
    """Rows (id, text, source, url, label, annotator, group_value) chosen by the spec, plus selection stats."""
    import duckdb

    from assay.curation.duckdb_locked import locked_connection

    files = shards if isinstance(shards, list) else document_shards(shards)
    con = locked_connection([*files, *([spec.annotations] if spec.annotations else [])])  # those files only
    file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet([{file_list}], union_by_name = true)")
    doc_cols = [r[0] for r in con.execute("DESCRIBE docs").fetchall()]
    source = "docs"
    if spec.annotations:
        if not os.path.isfile(spec.annotations):
            raise FileNotFoundError(f"annotation file {spec.annotations!r} does not exist")
        con.execute(f"CREATE VIEW ann AS SELECT * FROM {_reader_sql(spec.annotations)}")
        ann_cols = [r[0] for r in con.execute("DESCRIBE ann").fetchall()]
        if "url" not in ann_cols:
            raise ValueError(f"annotation file {spec.annotations!r} has no `url` column (columns: {ann_cols})")
        extra = [c for c in ann_cols if c not in doc_cols]
        select_extra = "".join(f', a."{c}"' for c in extra)
        con.execute(f"CREATE VIEW joined AS SELECT d.*{select_extra} FROM docs d LEFT JOIN "
                    f"(SELECT DISTINCT ON (url) * FROM ann) a ON d.url = a.url")
        source = "joined"
    cols = [r[0] for r in con.execute(f"DESCRIBE {source}").fetchall()]
    group = f"CAST(({spec.group_by}) AS VARCHAR)" if spec.group_by else "NULL"
    if spec.kind == "rubric":
        if spec.score_column not in cols:
            raise ValueError(f"score column {spec.score_column!r} is not in the shards (columns: {cols}); "
                             "annotate first or pass --score-column NAME")
        ann_col = spec.annotator_column or f"{spec.score_column}_annotator"
        annotator = f'CAST("{ann_col}" AS VARCHAR)' if ann_col in cols else "NULL"
        label = f'CAST("{spec.score_column}" AS DOUBLE)'
    else:
        negative = spec.negative_where or f"NOT ({spec.positive_where})"
        label = f"CASE WHEN ({spec.positive_where}) THEN 1.0 WHEN ({negative}) THEN 0.0 END"
        annotator = "'reference'"
    query = (f"SELECT CAST(id AS VARCHAR) AS id, text, source, url, {label} AS label, "
             f"{annotator} AS annotator, {group} AS group_value FROM {source}")
    try:
        table = con.sql(f"SELECT * FROM ({query}) WHERE label IS NOT NULL").to_arrow_table()
        total = con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    except duckdb.Error as exc:
        raise ValueError(f"label query failed ({exc}); check the --positive/--negative/--group SQL against the "
                         f"columns {cols}") from exc
    return table, {"documents": total, "labelled": table.num_rows}


def build_labels(shards: str | list[str], spec: LabelSpec, out_dir: str,
                 split: SplitConfig | None = None) -> dict[str, Any]:
    """Select, split and write a label dataset; returns its summary (also written as labels.json)."""
    split = split or SplitConfig()
    table, stats = select_labelled(shards, spec)
    rows, empty = [], 0
    for r in table.to_pylist():
        text = r["text"] or ""
        if not text.strip():
            empty += 1
            continue
        group = r["group_value"] or content_hash(text)
        rows.append({"id": r["id"], "text": text, "source": r["source"] or "", "url": r["url"] or "",
                     "domain": domain_of(r["url"] or ""), "group": group, "split": split_of(group, split),
                     "label": float(r["label"]), "annotator": r["annotator"]})
    if not rows:
        raise ValueError(f"no labelled documents ({stats['documents']} documents read): check the label spec")
    rows.sort(key=lambda r: (r["split"], r["id"]))
    out = pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for r in rows:
        key = f"{r['label']:g}"
        counts[r["split"]][key] = counts[r["split"]].get(key, 0) + 1
    summary = {"spec": asdict(spec), "split": asdict(split), **stats, "skipped_empty_text": empty,
               "counts": counts, "annotators": sorted({r["annotator"] for r in rows if r["annotator"]}),
               "data_hash": labels_hash(rows)}
    buf = io.BytesIO()
    pq.write_table(out, buf, compression="zstd")
    write_bytes_atomic(buf.getvalue(), os.path.join(out_dir, LABELS_FILE))
    write_bytes_atomic(json.dumps(summary, indent=2, sort_keys=True).encode(), os.path.join(out_dir, SUMMARY_FILE))
    return summary


def labels_hash(rows: list[dict[str, Any]]) -> str:
    """Identity of a label set: content hash, label and split of every row, order-independent."""
    h = hashlib.sha256()
    for item in sorted(f"{content_hash(r['text'])}\t{r['label']!r}\t{r['split']}" for r in rows):
        h.update(item.encode() + b"\n")
    return h.hexdigest()


def read_labels(label_dir: str, split: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of one split (or all) and the dataset summary."""
    path = os.path.join(label_dir, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{label_dir!r} has no {LABELS_FILE}: build it with `assay classify labels`")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = pq.read_table(path).to_pylist()
    with open(os.path.join(label_dir, SUMMARY_FILE), encoding="utf-8") as fh:
        summary = json.load(fh)
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
    return rows, summary
