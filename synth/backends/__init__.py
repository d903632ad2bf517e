"""Backend factory. `shared_backend` keeps one loaded model per process and config: a Beam worker (or a test
session) loads a model once, however many DoFns or tests ask for it."""
from __future__ import annotations

import json
import threading

from synth.backends.base import Backend, Completion, Messages, Usage, expected_score
from synth.config import BackendConfig

__all__ = ["Backend", "Completion", "Messages", "Usage", "check_backend_config", "expected_score", "make_backend",
           "shared_backend"]

_SHARED: dict[str, Backend] = {}
_LOCK = threading.Lock()


def check_backend_config(cfg: BackendConfig) -> None:
    """Fail on the driver, before any worker starts, when the model cannot be found."""
    if cfg.kind in ("transformers", "vllm"):
        from synth.backends.transformers_backend import resolve_model_path

        resolve_model_path(cfg.model, cfg.gguf_file)
    elif not cfg.base_url.startswith(("http://", "https://")):
        raise ValueError(f"backend.base_url must be an http(s) URL, got {cfg.base_url!r}")


def make_backend(cfg: BackendConfig) -> Backend:
    if cfg.kind == "transformers":
        from synth.backends.transformers_backend import TransformersBackend

        return TransformersBackend(cfg)
    if cfg.kind == "openai":
        from synth.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    from synth.backends.vllm_backend import VLLMBackend

    return VLLMBackend(cfg)


def shared_backend(cfg: BackendConfig) -> Backend:
    import dataclasses

    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = make_backend(cfg)
        return _SHARED[key]
