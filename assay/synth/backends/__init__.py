"""The LLM backends, keyed by their `kind` (the one registry: `BACKENDS`), and the factory. `shared_backend`
keeps one loaded model per process and config: a Beam worker (or a test session) loads a model once, however
many DoFns or tests ask for it.

Adding a backend: a `Backend` subclass with its `kind` and `check_config` in its own module here, one entry in
`BACKENDS`, the kind in `assay.synth.config.BackendKind` (a test checks they agree), its test, its doc row
(docs/architecture.md walks through it)."""
from __future__ import annotations

import json
import threading

from assay.synth.backends.base import Backend, Completion, Messages, Usage, expected_score
from assay.synth.backends.openai_backend import OpenAIBackend
from assay.synth.backends.transformers_backend import TransformersBackend
from assay.synth.backends.vllm_backend import VLLMBackend
from assay.synth.config import BackendConfig

__all__ = ["BACKENDS", "Backend", "Completion", "Messages", "Usage", "backend_class", "check_backend_config",
           "expected_score", "make_backend", "shared_backend"]

#: every backend by its `kind` (the modules import their heavy libraries only when a backend is built)
BACKENDS: dict[str, type[Backend]] = {cls.kind: cls for cls in (TransformersBackend, OpenAIBackend, VLLMBackend)}

_SHARED: dict[str, Backend] = {}
_LOCK = threading.Lock()


def backend_class(kind: str) -> type[Backend]:
    """The backend registered under `kind`; an unknown kind is an error naming the known ones."""
    try:
        return BACKENDS[kind]
    except KeyError:
        raise ValueError(f"backend.kind: unknown backend kind {kind!r}; known kinds: {', '.join(BACKENDS)}") from None


def check_backend_config(cfg: BackendConfig) -> None:
    """Fail on the driver, before any worker starts, when the backend cannot work with this config (each
    backend checks its own fields: a model path, a server URL)."""
    backend_class(cfg.kind).check_config(cfg)


def make_backend(cfg: BackendConfig) -> Backend:
    return backend_class(cfg.kind)(cfg)


def shared_backend(cfg: BackendConfig) -> Backend:
    import dataclasses

    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = make_backend(cfg)
        return _SHARED[key]
