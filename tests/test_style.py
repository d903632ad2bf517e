"""The house style where it has been audited (docs/architecture.md, "House style"): every field of a config
dataclass says what it is in a comment, and a stage sets up once what it needs for every document."""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

from assay.curation.document import Document

ROOT = Path(__file__).resolve().parents[1]
#: the audited tree (docs/architecture.md, "Where the rules hold"): all of it
AUDITED = ["assay/curation", "assay/classifiers", "assay/synth", "assay/trainer", "assay/kernels", "assay/groundwork",
           "assay/pipelines"]
#: classes that hold settings a user or a caller chooses (a recipe's and an ablation plan's tables included)
CONFIG_SUFFIXES = ("Config", "Sampling", "Limits", "Policy", "Spec", "Settings", "Recipe", "Ref", "Gates", "EvalSet")
CONFIG_CLASSES = ("Plan",)  # an ablation plan (a PhasePlan is a result, not a setting)


def _audited_files() -> list[Path]:
    return [path for top in AUDITED for path in sorted((ROOT / top).rglob("*.py"))]


def _uncommented_fields(path: Path, root: Path = ROOT) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ClassDef) and (node.name.endswith(CONFIG_SUFFIXES) or node.name in CONFIG_CLASSES)
                and any("dataclass" in ast.unparse(d) for d in node.decorator_list)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                on_it = any(n in comments for n in range(stmt.lineno, stmt.end_lineno + 1))
                above = lines[stmt.lineno - 2].strip().startswith("#")
                if not (on_it or above):
                    missing.append(f"{path.relative_to(root)}:{stmt.lineno} {node.name}.{stmt.target.id}")
    return missing


def test_every_config_field_says_what_it_is():
    files = _audited_files()
    assert len(files) > 130  # the walk found the tree
    missing = [m for path in files for m in _uncommented_fields(path)]
    assert not missing, ("config fields without a one-line comment (on the line, or `#:` above it): "
                         + ", ".join(missing))


def test_the_field_check_catches_a_bare_field(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text("from dataclasses import dataclass\n\n\n@dataclass\nclass DemoConfig:\n"
                    "    size: int = 1  # rows per batch\n    #: seconds per row\n    limit: float = 2.0\n"
                    "    seed: int = 0\n", encoding="utf-8")
    assert _uncommented_fields(bare, tmp_path) == ["bare.py:9 DemoConfig.seed"]


@pytest.mark.parametrize("statistics", ["assay", "datatrove"])
def test_word_split_is_installed_per_language_not_per_document(monkeypatch, statistics):
    """datatrove keeps one tokenizer per language and process: the filters install assay's split when they set
    up (or meet a new language), never once per document."""
    from assay.curation import filters
    from assay.curation.fast import word_cache

    calls: list[str] = []

    def counted(language, max_words=word_cache.DEFAULT_MAX_WORDS):
        calls.append(language)
        return word_cache.install_word_split(language, max_words)

    monkeypatch.setattr(filters, "install_word_split", counted)
    stages = [filters.TextStatistics(), filters.DatatroveFilter("gopher_quality", statistics=statistics),
              filters.DatatroveFilter("gopher_repetition", statistics=statistics)]
    for stage in stages:
        stage.setup()
    after_setup = len(calls)
    text = ("Binary search halves the interval at every step, so a sorted list of {n} items needs about {k} "
            "comparisons. Each step compares the middle item with the target and keeps the half that can still "
            "hold it; when the interval is empty, the target is not in the list, and the search says so.\n")
    docs = [Document(id=f"d{i}", text=text.format(n=2 ** (i + 8), k=i + 8), meta={"language": "en"})
            for i in range(12)]
    results = [stage.process(doc) for doc in docs for stage in stages]
    assert len(results) == 36 and isinstance(results[0], Document)
    assert after_setup == 3 and len(calls) == after_setup  # one per stage at setup, none per document
