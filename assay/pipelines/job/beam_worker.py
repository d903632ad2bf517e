"""Entry point of assay's local Beam worker processes: Beam's SDK harness with quiet logging.

Beam starts its multi-processing workers without the pipeline options, so they log every step at INFO.
Installing a WARNING-level handler before the harness starts keeps them quiet; the harness still forwards
records to the runner, which logs them at the launcher's level (`assay -v` shows everything).
"""
from __future__ import annotations

import logging
import os
import sys

#: messages Beam prints on every start that say nothing about the run
KNOWN_NOISE = ("apitools not found", "No semi_persistent_directory found")
#: errors that stop a run and that the command explains itself, in one paragraph with the traceback in a log
#: file (`assay synth exercises`: a sandbox that cannot isolate). Beam logs each with its traceback where a
#: worker raises it and again where the runner receives it; those two records are dropped.
EXPLAINED_ERRORS = ("SandboxUnavailable",)


def drop_known_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in KNOWN_NOISE + EXPLAINED_ERRORS)


def quiet_handlers(level: str | int) -> None:
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
        handler.addFilter(drop_known_noise)


def main() -> None:
    level = os.environ.get("ASSAY_WORKER_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    quiet_handlers(level)  # the harness raises the root logger to INFO; the handlers keep our level
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    # the runner has every result and waits for this process to end, one worker after another: skip the
    # interpreter's teardown (its gRPC threads and modules take ~0.4 s a worker), flushing what is buffered
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
