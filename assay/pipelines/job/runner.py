"""Where a Beam pipeline runs: one RunnerConfig for every job, the Beam runner and options built from it, and
running to completion (a watchdog and a progress view on the local runner, a local Dask cluster when asked).

"local" means Beam's FnApiRunner, run in worker processes: Beam's default DirectRunner first tries to
download a Prism binary, which must never happen here. "dask" is Beam's DaskRunner against a
`dask.distributed` scheduler (`--dask_client_address`; without one, a local cluster of `workers` processes
lives for the run). Any other runner name (DataflowRunner, FlinkRunner, SparkRunner, ...) is handed to Beam
unchanged with the user's flags.

A config file may come from someone else, and a Beam runner plus its flags decide where a job runs and which
commands its workers start (`--environment_type=PROCESS --environment_config=<command>` runs any command). So
a config file may name only the runners of this machine (FILE_RUNNERS) and flags that tune them (FILE_FLAGS);
everything else is accepted on the command line only (`RunnerConfig.check_from_file`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from assay.groundwork.config import FieldError

LOCAL_NAMES = {"local", "fnapi", "FnApiRunner"}
DASK_NAMES = {"dask", "DaskRunner"}
#: how the local runner runs its workers
LocalMode = Literal["multi_processing", "in_memory", "multi_threading"]
MODES = get_args(LocalMode)
WORKER_LOG_ENV = "ASSAY_WORKER_LOG_LEVEL"
#: runners a config file may name: they run on this machine, with assay's own worker command
FILE_RUNNERS = frozenset(LOCAL_NAMES | DASK_NAMES)
#: Beam flags a config file may give: they tune a local run; a scheduler's address, a container image, a worker
#: command, packages to install, a job server are not among them (a hostile scheduler or job server is code too)
FILE_FLAGS = frozenset({"default_sdk_harness_log_level", "dask_npartitions", "dask_partition_size", "job_name"})


@dataclass
class RunnerConfig:
    """How a job's Beam pipeline runs. `local` is Beam's FnApiRunner (no network, no Prism download); any other
    name goes to Beam as-is, with `beam_args` (e.g. --project, --temp_location) passed through."""

    runner: str = "local"  # "local", "dask", or a Beam runner's name (DataflowRunner, FlinkRunner, SparkRunner...)
    workers: int = 2  # local runner: worker processes (or threads); each reads whole work units
    mode: LocalMode = "multi_processing"  # local runner only
    beam_args: list[str] = field(default_factory=list)  # passed to Beam as given (--project, --temp_location...)
    progress: bool = True  # a live progress view of the stages while the pipeline runs (local runner)
    #: seconds one document may spend in one per-document stage (langid, filters, PII, ...); a slower document goes
    #: to the ledger as "timeout" instead of stalling its worker (0 = no limit; extract has its own extract.timeout_s)
    stage_timeout_s: float = 120.0
    #: local runner: seconds a worker process may be gone or stopped while the pipeline runs before the run
    #: fails with the cause (assay/pipelines/job/watchdog.py; 0 = no watchdog)
    watchdog_s: float = 20.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FieldError("mode", f"must be one of {list(MODES)}, got {self.mode!r}")
        if self.workers < 1:
            raise FieldError("workers", f"must be >= 1, got {self.workers}")
        if self.watchdog_s < 0:
            raise FieldError("watchdog_s", f"must be >= 0 (0 = off), got {self.watchdog_s}")
        if self.stage_timeout_s < 0:
            raise FieldError("stage_timeout_s", f"must be >= 0 (0 = no limit), got {self.stage_timeout_s}")

    def check_from_file(self) -> None:
        """A runner table read from a config file (assay.groundwork.config.from_dict) names a runner of this machine
        and tuning flags only; the command line may add anything (`assay run CONFIG --runner ... --flag=...`)."""
        where = "on the command line only (assay run CONFIG --runner NAME --flag=VALUE ...), never from a config " \
                "file, which may come from someone else"
        if self.runner not in FILE_RUNNERS:
            raise FieldError("runner", f"{self.runner!r} is accepted {where}; a config file may name "
                                       f"{sorted(FILE_RUNNERS)}")
        for flag in file_flag_names(self.beam_args):
            if flag not in FILE_FLAGS:
                raise FieldError("beam_args", f"{flag!r} is accepted {where}: Beam flags choose where a job runs "
                                              f"and which commands its workers start; a config file may give "
                                              f"{sorted(FILE_FLAGS)}")

    @property
    def is_local(self) -> bool:
        return self.runner in LOCAL_NAMES


def file_flag_names(args: list[str]) -> list[str]:
    """The names of the flags in `args` ("--name=value", or "--name" then its value); a word that is no flag's
    value counts as a name, so it is refused too."""
    names, value_may_follow = [], False
    for arg in args:
        if arg.startswith("-"):
            names.append(arg.lstrip("-").split("=", 1)[0])
            value_may_follow = "=" not in arg
        elif value_may_follow:
            value_may_follow = False
        else:
            names.append(arg)
    return names


def _MODE_WARNING(record: logging.LogRecord) -> bool:
    """Drop Beam's advice to use multi_processing: our worker environment already runs processes."""
    return "direct_running_mode" not in record.getMessage()


def build_options(cfg: RunnerConfig, beam_args: list[str] | None = None):
    """(runner object or None, PipelineOptions). None means: let Beam pick the runner named in the options.
    `beam_args` replaces cfg.beam_args (the job adds what it must, e.g. a local cluster's address)."""
    from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, WorkerOptions

    args = list(cfg.beam_args if beam_args is None else beam_args)
    if cfg.runner in LOCAL_NAMES:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        level = next((a.split("=", 1)[1] for a in args if a.startswith("--default_sdk_harness_log_level=")), "WARNING")
        if cfg.mode != "multi_processing":
            return FnApiRunner(), PipelineOptions(
                [f"--direct_num_workers={cfg.workers}", f"--direct_running_mode={cfg.mode}", *args])
        # Beam's own multi-processing mode starts workers without the pipeline options, so they log every
        # step at INFO; the same worker processes, started through assay/pipelines/job/beam_worker.py, log at `level`.
        from apache_beam.transforms import environments

        os.environ[WORKER_LOG_ENV] = level
        logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(_MODE_WARNING)
        worker = environments.SubprocessSDKEnvironment.from_command_string(
            f"{sys.executable} -m assay.pipelines.job.beam_worker")
        options = PipelineOptions([f"--direct_num_workers={cfg.workers}", "--direct_running_mode=in_memory", *args])
        return FnApiRunner(default_environment=worker), options
    if cfg.runner in DASK_NAMES:
        from apache_beam.runners.dask.dask_runner import DaskRunner

        if not any(a.startswith("--dask_client_address") for a in args):
            raise ValueError("the dask runner needs a scheduler address: pass --dask-address tcp://HOST:PORT, or "
                             "leave it out of `assay run` to start a local cluster")
        return DaskRunner(), PipelineOptions(args)
    options = PipelineOptions([f"--runner={cfg.runner}", *args])
    if options.view_as(StandardOptions).runner in (None, "DirectRunner", "PrismRunner"):
        raise ValueError(f"runner {cfg.runner!r} would download Prism; use runner = 'local' for local runs")
    setup = options.view_as(SetupOptions)
    image = options.view_as(WorkerOptions).sdk_container_image
    if cfg.runner == "DataflowRunner" and not (image or setup.setup_file or setup.requirements_file):
        # remote workers need assay itself: ship this checkout as a package. With --sdk_container_image
        # (docker/dataflow/Dockerfile: assay and its worker set are in the image, installed offline in two steps,
        # assay/pipelines/job/worker_env.py) nothing is shipped: a setup file would reinstall assay from PyPI
        # with its declared dependencies, torch among them, on every worker.
        setup.setup_file = str(Path(__file__).resolve().parents[3] / "setup.py")
    return None, options


def new_pipeline(cfg: RunnerConfig, beam_args: list[str] | None = None):
    """A Beam pipeline on the runner `cfg` names."""
    import apache_beam as beam

    runner, options = build_options(cfg, beam_args)
    return beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)


@contextlib.contextmanager
def beam_session(cfg: RunnerConfig) -> Iterator[list[str]]:
    """The Beam arguments for one run; for the dask runner without a scheduler address, a local cluster of
    `cfg.workers` processes lives for the run and its address is added."""
    from assay.pipelines.job.dask_cluster import close_clients, dask_address, local_cluster, partition_args

    args = list(cfg.beam_args)
    if cfg.runner not in DASK_NAMES:
        yield args
        return
    args = partition_args(args)
    if dask_address(args):
        try:
            yield args
        finally:
            close_clients()
        return
    with local_cluster(cfg.workers) as address:
        yield [*args, f"--dask_client_address={address}"]


def execute(p, cfg: RunnerConfig, progress_dir: str | None = None, stage_order: list[str] | None = None):
    """Run `p` to completion and return its result. On the local runner in worker processes a watchdog turns
    a lost worker into WorkerLost instead of a hang, and `progress_dir` (with `stage_order`) draws a live
    view of the workers' heartbeats."""
    watchdog_s = cfg.watchdog_s if cfg.is_local and cfg.mode == "multi_processing" else 0.0
    if not cfg.is_local or not (progress_dir or watchdog_s):
        return _run(p)
    return _run_watched(p, progress_dir, stage_order or [], watchdog_s)


def _run(p):
    result = p.run()
    result.wait_until_finish()
    return result


def _run_watched(p, progress_dir: str | None, order: list[str], watchdog_s: float):
    """Run in a thread; show progress (when `progress_dir`) and watch the worker processes (when
    `watchdog_s`): a lost worker fails the run with its cause instead of a hang."""
    from assay.pipelines.job.progress import watch
    from assay.pipelines.job.watchdog import Watchdog, kill_workers

    box: dict = {}

    def target():
        try:
            box["result"] = _run(p)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    dog = Watchdog(thread, watchdog_s) if watchdog_s else None
    if dog:
        dog.start()
    if progress_dir:
        watch(thread, progress_dir, order)
    while thread.is_alive():
        thread.join(0.5)
        if dog and dog.error and thread.is_alive():
            thread.join(30)  # the workers were killed: the runner fails quickly
            break
    if (dog and dog.error) or "error" in box:
        kill_workers()  # a failed local run leaves no worker behind
    if dog and dog.error:
        raise dog.error
    if "error" in box:
        raise box["error"]
    return box["result"]
