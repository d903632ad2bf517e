"""Beam runner and options from assay's runner config plus any Beam flags the user passes through.

"local" means Beam's FnApiRunner, run in worker processes: Beam's default DirectRunner first tries to
download a Prism binary, which must never happen here. "dask" is Beam's DaskRunner against a
`dask.distributed` scheduler (`--dask_client_address`; `assay run` starts a local cluster without one). Any other runner name (DataflowRunner,
FlinkRunner, SparkRunner, ...) is handed to Beam unchanged with the user's flags.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions


LOCAL_NAMES = {"local", "fnapi", "FnApiRunner"}
DASK_NAMES = {"dask", "DaskRunner"}
WORKER_LOG_ENV = "ASSAY_WORKER_LOG_LEVEL"


def _MODE_WARNING(record: logging.LogRecord) -> bool:
    """Drop Beam's advice to use multi_processing: our worker environment already runs processes."""
    return "direct_running_mode" not in record.getMessage()


def build_options(runner: str, workers: int = 2, mode: str = "multi_processing",
                  beam_args: list[str] | None = None) -> tuple[object | None, PipelineOptions]:
    """(runner object or None, PipelineOptions). None means: let Beam pick the runner named in the options."""
    args = list(beam_args or [])
    if runner in LOCAL_NAMES:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        if mode not in ("multi_processing", "in_memory", "multi_threading"):
            raise ValueError(f"runner.mode must be multi_processing, in_memory or multi_threading, got {mode!r}")
        if workers < 1:
            raise ValueError(f"runner.workers must be >= 1, got {workers}")
        level = next((a.split("=", 1)[1] for a in args if a.startswith("--default_sdk_harness_log_level=")), "WARNING")
        if mode != "multi_processing":
            return FnApiRunner(), PipelineOptions(
                [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}", *args])
        # Beam's own multi-processing mode starts workers without the pipeline options, so they log every
        # step at INFO; the same worker processes, started through pipelines/beam_worker.py, log at `level`.
        from apache_beam.transforms import environments

        os.environ[WORKER_LOG_ENV] = level
        logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(_MODE_WARNING)
        worker = environments.SubprocessSDKEnvironment.from_command_string(f"{sys.executable} -m pipelines.beam_worker")
        options = PipelineOptions([f"--direct_num_workers={workers}", "--direct_running_mode=in_memory", *args])
        return FnApiRunner(default_environment=worker), options
    if runner in DASK_NAMES:
        from apache_beam.runners.dask.dask_runner import DaskRunner

        if not any(a.startswith("--dask_client_address") for a in args):
            raise ValueError("the dask runner needs a scheduler address: pass --dask-address tcp://HOST:PORT, or "
                             "leave it out of `assay run` to start a local cluster")
        return DaskRunner(), PipelineOptions(args)
    options = PipelineOptions([f"--runner={runner}", *args])
    if options.view_as(StandardOptions).runner in (None, "DirectRunner", "PrismRunner"):
        raise ValueError(f"runner {runner!r} would download Prism; use runner = 'local' for local runs")
    setup = options.view_as(SetupOptions)
    if runner == "DataflowRunner" and not (setup.setup_file or setup.requirements_file):
        # remote workers need assay itself: ship this checkout as a package
        setup.setup_file = str(Path(__file__).resolve().parents[1] / "setup.py")
    return None, options
