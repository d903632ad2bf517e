"""The one config of `assay run`: inputs, stages and thresholds, with every default defined here, and the
registry of the stages it can run.

Written as TOML (see docs/curation.md); each table matches a dataclass below. `assay run --show-config`
prints the resolved config. Adding a stage to `assay run` is one entry in STAGES (and, if it has settings,
its table in CurateConfig), here; adding a per-document filter is one entry in assay.curation.filters.FILTERS.
`assay run --help`, the job's docstring and the tests' stage lists come from these two registries, and every
funnel stage they name has its row in docs/curation.md (tests/test_registries.py); docs/architecture.md lists
the whole change.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from assay.classifiers.scoring import ClassifierStageConfig
from assay.curation.dedup import EXACT_DEDUP, FUZZY_DEDUP, MinHashConfig
from assay.curation.extract import ExtractConfig
from assay.curation.filters import FILTERS, FilterConfig
from assay.curation.langid import LangIdConfig
from assay.curation.pii import PIIConfig
from assay.curation.readers import ReaderConfig
from assay.curation.readers.quarantine import STAGE as READ_STAGE  # the stage every run starts with: its reader
from assay.groundwork.config import from_dict, load_config
from assay.pipelines.job.runner import RunnerConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


def _per_document(*stages) -> list:
    from assay.pipelines.job.steps import PerDocument

    return [PerDocument(*stages)] if stages else []


def _extract(cfg: CurateConfig) -> list:
    from assay.curation.extract import ExtractText

    return _per_document(ExtractText(cfg.extract))


def _langid(cfg: CurateConfig) -> list:
    from assay.curation.langid import IdentifyLanguage

    return _per_document(IdentifyLanguage(cfg.langid))


def _filters(cfg: CurateConfig) -> list:
    from assay.curation.filters import build_filter_stages

    return _per_document(*build_filter_stages(cfg.filters))


def _pii(cfg: CurateConfig) -> list:
    from assay.curation.pii import MaskPII

    return _per_document(MaskPII(cfg.pii))


def _dedup(cfg: CurateConfig) -> list:
    from assay.pipelines.job.steps import Dedup

    d = cfg.dedup
    return [Dedup(d.exact, d.fuzzy, d.minhash)] if (d.exact or d.fuzzy) else []


def _classifiers(cfg: CurateConfig) -> list:
    from assay.pipelines.job.steps import Classify

    return [Classify(c) for c in cfg.classifiers]


#: an upload of a local model file or folder under the runner's temp location -> its remote path
Upload = Callable[[str], str]


def _upload_langid_model(cfg: CurateConfig, upload: Upload) -> None:
    from assay.curation.langid import bundled_lid_model

    cfg.langid.model_path = upload(cfg.langid.model_path or bundled_lid_model())


def _upload_filter_files(cfg: CurateConfig, upload: Upload) -> None:
    """The filter arguments that FILTERS names as local files (a word list, a model)."""
    for name in cfg.filters.enabled:
        for param in FILTERS[name].files if name in FILTERS else ():
            value = cfg.filters.kwargs_for(name).get(param)
            if value:
                cfg.filters.params.setdefault(name, {})[param] = upload(value)


def _upload_classifiers(cfg: CurateConfig, upload: Upload) -> None:
    from assay.classifiers.shipped import SHIPPED

    for stage_cfg in cfg.classifiers:  # shipped models travel inside assay's own package
        if stage_cfg.model_dir not in SHIPPED or os.path.isdir(stage_cfg.model_dir):
            stage_cfg.model_dir = upload(stage_cfg.model_dir)


@dataclass(frozen=True)
class RunStage:
    """One name `stages` may list."""

    #: the job steps it adds for a config (assay/pipelines/job/steps.py)
    steps: Callable[[CurateConfig], list]
    #: what it does, one line (`assay run --help`)
    summary: str
    #: the funnel and ledger stages its steps report, each a row of docs/curation.md's stage table
    funnel: tuple[str, ...]
    #: uploads the local files its config names for remote workers, rewriting the config to their remote paths
    upload_files: Callable[[CurateConfig, Upload], None] | None = None


#: Every stage `assay run` knows, in its default order. Per-document stages next to each other run fused in
#: one DoFn.
STAGES: dict[str, RunStage] = {
    "extract": RunStage(_extract, "main text from HTML with resiliparse", ("extract",)),
    "langid": RunStage(_langid, "language ID with fastText lid.176", ("langid",), _upload_langid_model),
    "filters": RunStage(_filters, "statistics, assay's page filters, datatrove's Gopher/C4/FineWeb filters",
                        ("stats", *FILTERS), _upload_filter_files),
    "pii": RunStage(_pii, "e-mails and IP addresses masked", ("pii",)),
    "dedup": RunStage(_dedup, "exact + MinHash dedup", (EXACT_DEDUP, FUZZY_DEDUP)),
    "classifiers": RunStage(_classifiers, "the shipped educational-value and knowledge-level classifiers",
                            ("classify:COLUMN",), _upload_classifiers),
}


def stages_overview() -> str:
    """The default stages in order, each with what it does (`assay run --help`)."""
    return " -> ".join([READ_STAGE, *(f"{name} ({stage.summary})" for name, stage in STAGES.items())])


@dataclass
class InputConfig:
    """What `assay run` reads."""

    #: files or globs to read (WARC, JSONL, Parquet, ...); relative paths resolve against the config file's folder
    paths: list[str] = field(default_factory=lambda: [str(SAMPLE_DIR / "*.warc.gz")])
    reader: ReaderConfig = field(default_factory=ReaderConfig)  # how each file is read (assay/curation/readers/)


@dataclass
class DedupConfig:
    """Which duplicates the dedup stage drops."""

    exact: bool = True  # drop documents whose normalised text is identical to a kept one
    fuzzy: bool = True  # drop near-duplicates found by MinHash LSH
    minhash: MinHashConfig = field(default_factory=MinHashConfig)  # the fuzzy dedup's shingles, hashes and bands


@dataclass
class OutputConfig:
    """Where and how the kept documents, the ledger and the statistics are written."""

    path: str = "out/run"  # the output folder: docs/, rejected/, stats/, run.json, README.md
    docs_per_shard: int = 20_000  # kept documents per Parquet shard of docs/
    ledger_per_shard: int = 50_000  # ledger records per Parquet shard of rejected/
    histograms: bool = True  # a PNG per numeric signal in stats/ (kept vs dropped), for local outputs
    #: the output's licence as the dataset card (README.md) declares it, a Hugging Face licence id such as
    #: "odc-by" or "cc-by-4.0"; "" records "other" and says to declare one
    license: str = ""
    #: the ledger keeps each dropped page's id, url, stage, reason, signals and the first 500 characters of its
    #: text; true keeps the text (up to 200,000 characters), at the cost of storing the dropped pages again
    ledger_full_text: bool = False


def default_classifiers() -> list[ClassifierStageConfig]:
    """The shipped educational-value and knowledge-level models (assay/classifiers/shipped.py), by name, as drop
    stages at the thresholds stored in their metadata."""
    return [ClassifierStageConfig(model_dir="edu", column="edu_score", mode="drop"),
            ClassifierStageConfig(model_dir="knowledge", column="knowledge_score", mode="drop")]


@dataclass
class CurateConfig:
    """Everything one `assay run` does: one table per stage with settings, plus input, output and runner."""

    input: InputConfig = field(default_factory=InputConfig)  # the files to read
    extract: ExtractConfig = field(default_factory=ExtractConfig)  # the "extract" stage
    langid: LangIdConfig = field(default_factory=LangIdConfig)  # the "langid" stage
    filters: FilterConfig = field(default_factory=FilterConfig)  # the "filters" stage
    pii: PIIConfig = field(default_factory=PIIConfig)  # the "pii" stage
    dedup: DedupConfig = field(default_factory=DedupConfig)  # the "dedup" stage
    #: classifier scoring stages, run after dedup: [{model_dir, column, threshold, mode}] (see docs/classifiers.md);
    #: the default runs the two shipped models as drop stages at their stored thresholds; `classifiers = []` or
    #: leaving "classifiers" out of `stages` turns them off
    classifiers: list[ClassifierStageConfig] = field(default_factory=default_classifiers)
    #: stages to run, in order; drop a name to skip that stage
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    output: OutputConfig = field(default_factory=OutputConfig)  # where the results go
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # the Beam runner and its workers

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; known: {list(STAGES)}")

    def steps(self) -> list:
        """The job steps of the stages this config runs, in its order."""
        return [step for name in self.stages for step in STAGES[name].steps(self)]


def load_curate_config(path: str | None) -> CurateConfig:
    """The config from a TOML file (relative input paths resolve against the file's folder), or the defaults."""
    if not path:
        return CurateConfig()
    base = Path(path).resolve().parent

    def build(data: dict) -> CurateConfig:
        cfg = from_dict(CurateConfig, data)
        cfg.input.paths = [p if "://" in p or Path(p).is_absolute() else str(base / p) for p in cfg.input.paths]
        return cfg

    return load_config(CurateConfig, path, build)
