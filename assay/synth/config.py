"""Settings of synthetic-data generation, with their defaults defined once here.

Every knob that changes what a model produces (sampling parameters, seed, model identity) is part of the
request cache key and of each generated document's provenance.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

#: the LLM backends a config may name; each is a class in assay.synth.backends.BACKENDS under this key
BackendKind = Literal["transformers", "openai", "vllm"]


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters. temperature 0 means greedy. `seed` makes sampling reproducible per prompt."""

    max_new_tokens: int = 256  # longest answer, in tokens
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0  # nucleus sampling mass (1: off)
    seed: int = 0  # per-prompt sampling seed (part of the request cache key)
    logprobs: bool = False  # return the log-probability of every generated token
    top_logprobs: int = 0  # also the k most likely tokens at every step (OpenAI's top_logprobs)
    stop: tuple[str, ...] = ()  # strings that end an answer

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        return d

    def with_seed(self, seed: int) -> "Sampling":
        return dataclasses.replace(self, seed=seed)


@dataclass
class BackendConfig:
    """Which backend answers, with which model and settings (grouped below by the backend that reads them)."""

    kind: BackendKind = "transformers"  # which backend answers (assay.synth.backends.BACKENDS)
    model: str = ""  # a local model folder or .gguf file (never a hub id)
    gguf_file: str | None = None  # file name inside `model` when it is a directory holding a GGUF
    device: str = "cpu"  # transformers: torch device
    dtype: str = "float32"  # transformers/vllm: weight dtype (vllm: "float32" means vLLM's "auto")
    batch_size: int = 8  # prompts per generate call
    cpu_threads: int = 1  # torch threads per worker on CPU; keep workers x threads <= cores (oversubscribed
    #                       threads spin against each other: 10x slower on a busy 2-core machine)
    # openai
    base_url: str = "http://127.0.0.1:8000/v1"  # the OpenAI-compatible server
    served_model: str | None = None  # the server's model name; default: the server's first model
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the API key (never the key itself)
    concurrency: int = 4  # requests in flight at once
    retries: int = 3  # further tries of a failed request
    backoff_s: float = 0.5  # wait before retry n: backoff_s * 2 ** (n - 1)
    timeout_s: float = 120.0  # seconds per request
    # vllm
    tensor_parallel_size: int = 1  # GPUs one model is split across
    max_model_len: int | None = None  # context length vLLM reserves for; None: the model's
    enable_prefix_caching: bool = True  # vLLM reuses the KV cache of shared prompt prefixes
    gpu_memory_utilization: float = 0.9  # share of GPU memory vLLM may take
    extra: dict[str, Any] = field(default_factory=dict)  # further keyword arguments for vllm.LLM

    def __post_init__(self) -> None:
        if self.kind not in get_args(BackendKind):
            raise ValueError(f"backend.kind: unknown backend kind {self.kind!r}; known kinds: "
                             f"{', '.join(get_args(BackendKind))}")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("backend.batch_size and backend.concurrency must be >= 1")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed program run, and the one (loudly named) way to run without OS
    isolation on a machine that cannot provide it."""

    cpu_seconds: int = 5  # CPU seconds of each process (RLIMIT_CPU)
    wall_seconds: float = 10.0  # wall-clock seconds of the whole run
    memory_bytes: int = 512 * 1024 * 1024  # the whole run: its processes, tmpfs pages, kernel objects (cgroup)
    file_bytes: int = 1024 * 1024  # largest file it may write; stderr past this stops the run
    max_processes: int = 64  # processes (and threads) of one run, counted by its cgroup
    output_bytes: int = 64 * 1024  # stdout kept for the answer; stdout past this stops the run
    open_files: int = 64  # open file descriptors per process (RLIMIT_NOFILE)
    disk_bytes: int = 16 * 1024 * 1024  # size of each private tmpfs (/work and /tmp)
    shm_bytes: int = 1024 * 1024  # size of /dev/shm
    max_files: int = 4096  # files (inodes) of each private tmpfs (/work, /tmp, /dev/shm)
    cpus: float = 1.0  # CPU bandwidth of the whole run (cgroup cpu quota)
    rlimit_processes: int = 4  # without a cgroup: the run's processes, each with memory_bytes / this of memory
    unsafe_no_isolation: bool = False  # run with only rlimits and the audit hook; recorded in every affected row

    def __post_init__(self) -> None:
        if min(self.memory_bytes, self.max_processes, self.rlimit_processes, self.max_files, self.disk_bytes,
               self.shm_bytes) < 1 or self.cpus <= 0:
            raise ValueError("sandbox limits must be positive: memory_bytes, max_processes, rlimit_processes, "
                             "max_files, disk_bytes, shm_bytes, cpus")
