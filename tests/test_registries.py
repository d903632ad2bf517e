"""One registry per extension point: what is registered is what the config types, the CLI help and the docs
name, and an unknown name is an error that lists the known ones."""
import tomllib
from pathlib import Path
from typing import get_args

import pytest

from assay.curation.filters import FILTERS, PROFILES, FilterConfig, filter_spec, profile_filters
from assay.pipelines.curate.config import READ_STAGE, STAGES, CurateConfig, stages_overview
from assay.synth.backends import BACKENDS, check_backend_config, make_backend
from assay.synth.config import BackendConfig, BackendKind


def test_backends_are_keyed_by_their_kind_and_match_the_config_type():
    assert all(cls.kind == kind for kind, cls in BACKENDS.items())
    assert set(BACKENDS) == set(get_args(BackendKind))


def test_an_unknown_backend_kind_is_an_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend kind 'llamacpp'; known kinds: transformers, openai, vllm"):
        BackendConfig(kind="llamacpp")
    cfg = BackendConfig()
    cfg.kind = "llamacpp"  # set after the config's own check: the registry still refuses it
    for call in (check_backend_config, make_backend):
        with pytest.raises(ValueError, match="known kinds: transformers, openai, vllm"):
            call(cfg)


def test_each_backend_checks_its_own_config(tmp_path):
    with pytest.raises(ValueError, match="base_url must be an http"):
        check_backend_config(BackendConfig(kind="openai", base_url="ftp://x"))
    check_backend_config(BackendConfig(kind="openai", model=""))  # a server needs no local model
    for kind in ("transformers", "vllm"):
        with pytest.raises(ValueError, match="backend.model is empty"):
            check_backend_config(BackendConfig(kind=kind, model=""))
        with pytest.raises(FileNotFoundError, match="not a local directory"):
            check_backend_config(BackendConfig(kind=kind, model=str(tmp_path / "absent")))


ROOT = Path(__file__).resolve().parents[1]


def _doc_rows(doc: str, header: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with `header`."""
    lines = (ROOT / "docs" / doc).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_backend_has_its_doc_row():
    documented = {row[0].strip("`") for row in _doc_rows("synth.md", "| kind |")}
    assert set(BACKENDS) <= documented, f"add a row to docs/synth.md's backend table for {set(BACKENDS) - documented}"


def test_every_stage_and_filter_has_its_doc_row():
    """Each funnel stage the run registry names (every filter of FILTERS among them) has a row in docs/curation.md
    naming the `stages` entry that runs it."""
    documented = {name.strip(): row[1] for row in _doc_rows("curation.md", "| stage |") for name in row[0].split(",")}
    missing = [(name, key) for key, stage in STAGES.items() for name in stage.funnel if documented.get(name) != key]
    assert not missing, f"add rows to docs/curation.md's stage table: (stage, `stages` entry) {missing}"
    assert documented[READ_STAGE] == "(always)"
    assert set(FILTERS) <= set(STAGES["filters"].funnel)


def test_help_docstring_and_example_config_follow_the_stage_registry():
    from assay.pipelines.cli.curate import RUN_HELP
    from assay.pipelines.curate import job

    assert stages_overview() in " ".join(RUN_HELP.split())
    assert all(f"{name} ({stage.summary})" in stages_overview() for name, stage in STAGES.items())
    assert " -> ".join([READ_STAGE, *STAGES, "shards"]) in " ".join(job.__doc__.split())
    example = tomllib.loads((ROOT / "configs" / "curate.example.toml").read_text())
    assert example["stages"] == list(STAGES) == CurateConfig().stages


def test_profiles_run_their_registered_filters_in_registry_order():
    for profile in PROFILES:
        names = list(profile_filters(profile))
        assert names == [n for n in FILTERS if n in names] and FilterConfig(profile=profile).enabled == names
    assert list(profile_filters("assay")) == list(FILTERS)
    for name, spec in FILTERS.items():
        assert spec.name == name and isinstance(spec.judge_class(), type)
        if spec.fast:
            assert issubclass(spec.judge_class("assay"), spec.judge_class()), name
    with pytest.raises(ValueError, match="unknown filter 'gopher'; choose from"):
        filter_spec("gopher")
