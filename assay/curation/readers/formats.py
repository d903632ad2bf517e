"""Which reader a file goes to, from its name (reader.format="auto") or from the config."""
from __future__ import annotations

#: file-name endings -> format (checked longest first, case-insensitive)
SUFFIXES = {
    ".warc": "warc", ".warc.gz": "warc", ".arc": "warc", ".arc.gz": "warc",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".jsonl.zst": "jsonl", ".jsonl.zstd": "jsonl",
    ".ndjson": "jsonl", ".ndjson.gz": "jsonl", ".ndjson.zst": "jsonl", ".json.gz": "jsonl", ".json.zst": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "arrow",
}
#: metadata beside the data of a Hugging Face dataset (save_to_disk folders, Hub-style repositories): passed over
#: in a folder without a warning, since they are not input
DATASET_SIDE_FILES = frozenset({"state.json", "dataset_info.json", "dataset_dict.json", "README.md"})
_BY_LENGTH = sorted(SUFFIXES, key=len, reverse=True)


def format_from_name(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in _BY_LENGTH:
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def accepted_formats() -> str:
    """A one-line list of the accepted file endings, for error messages."""
    return ", ".join(SUFFIXES)


def format_of(path: str, configured: str) -> str | None:
    """The format to read `path` as: the configured one, or (auto) the one its name says; None if unknown."""
    return configured if configured != "auto" else format_from_name(path)
