"""The local runner's watchdog: a worker process that stops or dies fails the run quickly, with the cause,
instead of hanging (Beam's FnApiRunner waits forever for a stopped worker)."""
import os
import signal
import threading
import time

import pytest

from assay.pipelines.curate.config import load_curate_config
from assay.pipelines.curate.job import run_curation
from assay.pipelines.job.watchdog import WorkerLost, worker_states


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_lost_worker_fails_the_run_within_the_grace_period(tmp_path, sig):
    cfg = load_curate_config(None)
    cfg.runner.progress = False
    cfg.runner.watchdog_s = 5.0
    out = str(tmp_path / "out")
    box: dict = {}

    def run():
        try:
            box["result"] = run_curation(cfg, output=out)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline, victim = time.time() + 120, None
    while time.time() < deadline and victim is None and thread.is_alive():
        workers = worker_states()
        if workers:
            time.sleep(3)  # let it get into the work
            victim = next(iter(worker_states()), None)
            if victim:
                os.kill(victim, sig)
                lost_at = time.time()
        time.sleep(0.1)
    assert victim is not None, "no worker process appeared"
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run hung after its worker was lost"
    assert time.time() - lost_at < 60
    error = box.get("error")
    assert error is not None and "result" not in box
    if sig == signal.SIGSTOP:  # Beam alone would hang here; the watchdog names the cause
        assert isinstance(error, WorkerLost) and str(victim) in str(error) and "stopped" in str(error)
    time.sleep(1)
    assert all(s in "ZX" for s in worker_states().values()), "a worker outlived the failed run"
    assert not os.path.exists(os.path.join(out, "docs")), "nothing published from a failed run"
