"""The one config of `assay run`: inputs, stages and thresholds, with every default defined here.

Written as TOML (see docs/curation.md); each table matches a dataclass below. `assay run --show-config`
prints the resolved config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.dedup import MinHashConfig
from curation.extract import ExtractConfig
from curation.filters import FilterConfig
from curation.langid import LangIdConfig
from curation.pii import PIIConfig
from curation.readers import ReaderConfig
from groundwork.config import from_dict, load_toml

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


@dataclass
class InputConfig:
    paths: list[str] = field(default_factory=lambda: [str(SAMPLE_DIR / "*.warc.gz")])
    reader: ReaderConfig = field(default_factory=ReaderConfig)


@dataclass
class DedupConfig:
    exact: bool = True
    fuzzy: bool = True
    minhash: MinHashConfig = field(default_factory=MinHashConfig)


@dataclass
class OutputConfig:
    path: str = "out/run"
    docs_per_shard: int = 20_000
    ledger_per_shard: int = 50_000
    histograms: bool = True


@dataclass
class RunnerConfig:
    """`local` is Beam's FnApiRunner (no network, no Prism download); any other name goes to Beam as-is."""

    runner: str = "local"
    workers: int = 2
    mode: str = "multi_processing"  # or in_memory / multi_threading (local runner only)
    beam_args: list[str] = field(default_factory=list)
    progress: bool = True
    #: seconds one document may spend in one per-document stage (langid, filters, PII, ...); a slower document goes
    #: to the ledger as "timeout" instead of stalling its worker (0 = no limit; extract has its own extract.timeout_s)
    stage_timeout_s: float = 120.0
    #: local runner: seconds a worker process may be gone or stopped while the pipeline runs before the run
    #: fails with the cause (pipelines/watchdog.py; 0 = no watchdog)
    watchdog_s: float = 20.0

    def __post_init__(self) -> None:
        if self.watchdog_s < 0:
            raise ValueError(f"runner.watchdog_s must be >= 0 (0 = off), got {self.watchdog_s}")
        if self.stage_timeout_s < 0:
            raise ValueError(f"runner.stage_timeout_s must be >= 0 (0 = no limit), got {self.stage_timeout_s}")


#: the shipped educational-value and knowledge-level models (classifiers/shipped.py), by name
DEFAULT_CLASSIFIERS: tuple[dict[str, Any], ...] = (
    {"model_dir": "edu", "column": "edu_score", "mode": "drop"},
    {"model_dir": "knowledge", "column": "knowledge_score", "mode": "drop"},
)


@dataclass
class RunConfig:
    input: InputConfig = field(default_factory=InputConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    pii: PIIConfig = field(default_factory=PIIConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    #: classifier scoring stages, run after dedup: [{model_dir, column, threshold, mode}] (see docs/classifiers.md);
    #: the default runs the two shipped models as drop stages at their stored thresholds; `classifiers = []` or
    #: leaving "classifiers" out of `stages` turns them off
    classifiers: list[dict[str, Any]] = field(default_factory=lambda: [dict(c) for c in DEFAULT_CLASSIFIERS])
    #: stages to run, in order; drop a name to skip that stage
    stages: list[str] = field(default_factory=lambda: ["extract", "langid", "filters", "pii", "dedup", "classifiers"])
    output: OutputConfig = field(default_factory=OutputConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    def __post_init__(self) -> None:
        known = {"extract", "langid", "filters", "pii", "dedup", "classifiers"}
        unknown = [s for s in self.stages if s not in known]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; known: {sorted(known)}")


def load_run_config(path: str | None) -> RunConfig:
    """The config from a TOML file (relative input paths resolve against the file's folder), or the defaults."""
    if not path:
        return RunConfig()
    data = load_toml(path)
    cfg = from_dict(RunConfig, data)
    base = Path(path).resolve().parent
    cfg.input.paths = [p if "://" in p or Path(p).is_absolute() else str(base / p) for p in cfg.input.paths]
    return cfg
