"""The dataset card: README.md with YAML front matter, written into every output folder (`assay run`, every
`assay synth` job, `assay mix`), the form in which FineWeb-style corpora are shared and loaded.

The front matter holds what Hugging Face's card metadata names (license, language, size_categories,
source_datasets, and `configs`, which points `datasets.load_dataset(FOLDER)` at the Parquet files) and an
`assay` block: the job, the funnel, the resolved config, package versions and the sha256 of every model
file the job used. The body repeats the essentials for a reader. The card is written atomically (temp +
rename, through Beam's FileSystems for a remote folder), as the job's other records are; a mix writes it
inside its work folder, which appears whole or not at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import yaml

from assay.curation.shards import CARD_FILE  # the card's name is part of an output's layout

#: recorded when a config declares no licence (the card says where to declare one)
UNDECLARED = "other"


def size_category(n: int) -> str:
    """Hugging Face's size_categories bucket of `n` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
                        (1_000_000_000, "100M<n<1B")):
        if n < limit:
            return name
    return "n>1B"


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def path_sha256(path: str) -> str:
    """sha256 of a file, or of a folder's files (each relative name and its sha256, in name order)."""
    if os.path.isfile(path):
        return file_sha256(path)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(f"{os.path.relpath(full, path)}\0{file_sha256(full)}\n".encode())
    return h.hexdigest()


_MODEL_KEYS = ("model", "model_path", "model_dir", "gguf_file")
#: config tables that belong to a stage of the same name (left out when a `stages` list does not name it)
STAGE_TABLES = ("langid", "classifiers", "filters", "pii", "dedup", "extract")


def model_files(settings: Any) -> dict[str, dict[str, str]]:
    """{where in the config: {path, sha256}} of every local model file or folder a job's resolved config names
    (keys model / model_path / model_dir anywhere in it; shipped classifier names and the bundled language-ID
    model resolved to their files; in a config with a `stages` list, the tables of stages it does not run are left
    out). Remote paths are recorded without a hash."""
    from assay.classifiers.shipped import resolve_model_dir

    found: dict[str, dict[str, str]] = {}

    def visit(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{where}.{key}" if where else str(key)
                if key in _MODEL_KEYS and isinstance(item, str) and item:
                    local = key == "model_dir" and "://" not in item  # a remote one is named, never fetched
                    _record(found, here, resolve_model_dir(item) if local else item)
                else:
                    visit(item, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, f"{where}[{i}]")

    stages = settings.get("stages") if isinstance(settings, dict) else None
    if isinstance(stages, list):
        for key, item in settings.items():
            if key not in STAGE_TABLES or key in stages:
                visit({key: item}, "")
    else:
        visit(settings, "")
    langid = settings.get("langid") if isinstance(settings, dict) else None
    if isinstance(langid, dict) and not langid.get("model_path") and "langid" in settings.get("stages", ()):
        from assay.curation.langid import bundled_lid_model

        try:
            _record(found, "langid.model_path", bundled_lid_model())
        except FileNotFoundError:
            pass
    return found


def _record(found: dict, where: str, path: str) -> None:
    if "://" in path:
        found[where] = {"path": path}
    elif os.path.exists(path):
        found[where] = {"path": os.path.abspath(path), "sha256": path_sha256(path)}


def sources_of(source: Any) -> list[str]:
    """What a job's Source read: input paths and shard folders; generated items by their label."""
    if hasattr(source, "sources"):
        return [s for part in source.sources for s in sources_of(part)]
    if hasattr(source, "source"):
        return sources_of(source.source)
    if hasattr(source, "paths"):
        return [str(p) for p in source.paths]
    if hasattr(source, "path"):
        return [str(source.path)]
    return [f"generated: {getattr(source, 'label', type(source).__name__)}"]


def languages_of(docs_files: list[str]) -> list[str]:
    """The distinct values of the `language` column of local document shards (none: no such column)."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in docs_files:
        if "language" in pq.ParquetFile(path).schema_arrow.names:
            found.update(v for v in pq.read_table(path, columns=["language"]).column("language").to_pylist() if v)
    return sorted(found)


def _license(settings: dict) -> str:
    output = settings.get("output") if isinstance(settings.get("output"), dict) else {}
    return str(settings.get("license") or output.get("license") or UNDECLARED)


def render(meta: dict[str, Any], body: str) -> str:
    """The card's text: the YAML front matter between `---` lines, then the Markdown body. Values YAML cannot hold
    (paths, tuples, ...) are written as JSON would write them, so a run never fails at its card."""
    meta = json.loads(json.dumps(meta, default=str))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120) + "---\n\n" + body


def read_front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a card's text (what `render` wrote)."""
    if not text.startswith("---\n"):
        raise ValueError("not a dataset card: no YAML front matter (a first line `---`)")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def shard_output_card(name: str, record: dict, funnel: dict, sources: list[str], languages: list[str]) -> str:
    """The card of a document-shard output (a ShardJob's: `assay run`, `assay synth ...`, `classify score`)."""
    settings = record.get("config") or {}
    counts = record.get("counts", {})
    kept = int(counts.get("kept", 0))
    license_ = _license(settings)
    meta: dict[str, Any] = {
        "license": license_,
        "pretty_name": f"assay {name} output",
        "size_categories": [size_category(kept)],
        "task_categories": ["text-generation"],
        "tags": ["assay", name],
        "source_datasets": sources,
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": "docs/*.parquet"}]},
            {"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected/*.parquet"}]},
        ],
        "assay": {
            "job": name,
            "sizes": {"documents": kept, "rejected": int(counts.get("rejected", 0)),
                      "bytes_read": funnel.get("totals", {}).get("bytes_read", 0),
                      "bytes_kept": funnel.get("totals", {}).get("bytes_kept", 0)},
            "funnel": [{k: row[k] for k in ("stage", "docs_in", "docs_out", "rejected")}
                       for row in funnel.get("stages", [])],
            "config": settings,
            "versions": record.get("versions", {}),
            "models": model_files(settings),
        },
    }
    if languages:
        meta["language"] = languages
    rows = "\n".join(f"| {r['stage']} | {r['docs_in']:,} | {r['docs_out']:,} | "
                     f"{', '.join(f'{k}: {v:,}' for k, v in r['rejected'].items()) or '-'} |"
                     for r in meta["assay"]["funnel"])
    body = (f"# {meta['pretty_name']}\n\n"
            f"{kept:,} documents in `docs/*.parquet` (one row per document, one column per signal) and "
            f"{meta['assay']['sizes']['rejected']:,} dropped records with their stage and reason in "
            "`rejected/*.parquet`, written by assay's `" + name + "` job.\n\n"
            "```python\nfrom datasets import load_dataset\n"
            "docs = load_dataset(\"parquet\", data_files=\"FOLDER/docs/*.parquet\", split=\"train\")\n```\n\n"
            f"License: {license_}" + (" (not declared: set `license` under `[output]` in the run config)"
                                      if license_ == UNDECLARED else "") + "\n\n"
            "Sources:\n\n" + "\n".join(f"- `{s}`" for s in sources) + "\n\n"
            "## Funnel\n\n| stage | docs in | docs out | dropped (reason: count) |\n|---|---|---|---|\n" + rows + "\n\n"
            "The resolved config, package versions and the sha256 of every model are in the front matter "
            "(`assay:`) and in `run.json`.\n")
    return render(meta, body)


def split_name(name: str) -> str:
    """A pool name as a Hugging Face split name (word characters and dots only)."""
    return re.sub(r"[^\w.]", "_", name)


def mix_card(manifest: dict[str, Any], license_: str = "", exports: dict[str, Any] | None = None) -> str:
    """The card of a token mix (`assay mix`): the held-out documents load as Parquet, the token shards are
    described (and their exports for other trainers listed)."""
    pools = manifest.get("pools", {})
    sources = [p["source"] for p in pools.values() if p.get("source")]
    recipe = manifest.get("recipe", {})
    license_ = license_ or UNDECLARED
    meta: dict[str, Any] = {
        "license": license_,
        "pretty_name": "assay token mix",
        "size_categories": [size_category(int(manifest.get("sequences", 0)))],
        "task_categories": ["text-generation"],
        "tags": ["assay", "mix", "tokenized"],
        "source_datasets": sources,
        "configs": [{"config_name": "heldout", "data_files": [
            {"split": split_name(name), "path": p["heldout"]} for name, p in pools.items() if p.get("heldout")]}],
        "assay": {
            "job": "mix",
            "sizes": {"sequences": manifest.get("sequences"), "tokens": manifest.get("tokens"),
                      "seq_len": manifest.get("seq_len"), "vocab_size": manifest.get("vocab_size"),
                      "dtype": manifest.get("dtype")},
            "funnel": {"pools": pools, "phases": [{k: v for k, v in ph.items() if k != "pools"}
                                                  for ph in manifest.get("phases", [])]},
            "config": recipe,
            "recipe_hash": manifest.get("recipe_hash"),
            "fingerprint": manifest.get("fingerprint"),
            "models": {"tokenizer": {"path": manifest.get("tokenizer"), "sha256": manifest.get("files", {}).get(
                manifest.get("tokenizer", ""), ""), "tokenizer_hash": manifest.get("tokenizer_hash")}},
            "exports": exports or {},
        },
    }
    phase_rows = "\n".join(f"| {ph['name']} | {ph['sequences']:,} | {ph['tokens']:,} | "
                           f"{', '.join(ph.get('pools', {})) or '-'} |" for ph in manifest.get("phases", []))
    body = (f"# assay token mix\n\n{manifest.get('sequences', 0):,} sequences of {manifest.get('seq_len')} + 1 "
            f"tokens ({manifest.get('dtype')}, vocabulary {manifest.get('vocab_size'):,}, EOS id "
            f"{manifest.get('eos_id')}) in `shards/`, in training order; `manifest.json` describes them "
            "(docs/mix.md). Held-out documents, one split per pool, load as Parquet:\n\n"
            "```python\nfrom datasets import load_dataset\n"
            "heldout = load_dataset(\"parquet\", data_files={\"POOL\": \"FOLDER/heldout/POOL.parquet\"})\n```\n\n"
            f"License: {license_}" + (" (not declared: set `license` in the recipe)"
                                      if license_ == UNDECLARED else "") + "\n\n"
            "Sources:\n\n" + "\n".join(f"- `{s}`" for s in sources) + "\n\n"
            "## Phases\n\n| phase | sequences | tokens | pools |\n|---|---|---|---|\n" + phase_rows + "\n")
    if exports:
        body += "\n## Exports for other trainers\n\n" + "\n".join(
            f"- `{fmt}`: " + ", ".join(f"`{f}`" for f in info.get("files", [])) for fmt, info in exports.items()) + "\n"
    return render(meta, body)


def write_card(folder: str, text: str) -> str:
    """Write `text` as FOLDER/README.md so it appears only complete; returns its path."""
    path = f"{folder.rstrip('/')}/{CARD_FILE}"
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems

        tmp = f"{folder.rstrip('/')}/.tmp-{CARD_FILE}"
        with FileSystems.create(tmp) as fh:
            fh.write(text.encode("utf-8"))
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([tmp], [path])
        return path
    from assay.groundwork.atomic import write_bytes_atomic

    write_bytes_atomic(text.encode("utf-8"), path)
    return path
