"""One registry per extension point: what is registered is what the config types, the CLI help and the docs
name, and an unknown name is an error that lists the known ones."""
from typing import get_args

import pytest

from synth.backends import BACKENDS, check_backend_config, make_backend
from synth.config import BackendConfig, BackendKind


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
