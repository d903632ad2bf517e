"""`assay run` on a real distributed engine: Beam's DaskRunner against a local dask.distributed cluster of
worker processes. Same kept documents, ledger and funnel as the local runner; dedup global across input
files (each file its own Dask partition); a worker killed mid-run is replaced and the output is unchanged."""
import os
import signal
import threading
import time

import duckdb
import pytest

from assay.pipelines.curate.config import load_curate_config
from assay.pipelines.curate.job import run_curation
from assay.pipelines.job.funnel import load_funnel

pytest.importorskip("distributed")


def _config(runner: str, **runner_fields):
    cfg = load_curate_config(None)  # the embedded sample: 3 WARC files, 429 pages
    cfg.runner.runner = runner
    cfg.runner.progress = False
    cfg.output.histograms = False
    for key, value in runner_fields.items():
        setattr(cfg.runner, key, value)
    return cfg


def _content(out: str) -> tuple[list, list]:
    docs = duckdb.sql(f"SELECT id, text FROM read_parquet('{out}/docs/*.parquet') ORDER BY id").fetchall()
    ledger = duckdb.sql(f"SELECT id, stage, reason, detail FROM read_parquet('{out}/rejected/*.parquet') "
                        "ORDER BY id, stage").fetchall()
    return docs, ledger


def _counts(funnel: dict) -> list:
    return [(s["stage"], s["docs_in"], s["docs_out"], s["rejected"]) for s in funnel["stages"]]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("local") / "out")
    run_curation(_config("local", workers=2), output=out)
    return out


def test_the_sample_on_a_dask_cluster_equals_the_local_runner(local_run, tmp_path):
    out = str(tmp_path / "dask")
    result = run_curation(_config("dask", workers=2), output=out)  # starts and closes a 2-process cluster
    docs, ledger = _content(out)
    assert (docs, ledger) == _content(local_run)
    assert len(docs) > 100 and len(ledger) > 100
    assert _counts(load_funnel(out)) == _counts(load_funnel(local_run))
    assert result.funnel["totals"]["read"] == 429 and result.funnel["bytes_counted"] is False
    # near-duplicates read from different input files (different partitions, so different tasks) collapsed
    cross = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/rejected/*.parquet') r "
        f"JOIN read_parquet('{out}/docs/*.parquet') d ON r.detail = 'near-duplicate of ' || d.id "
        "WHERE r.stage = 'fuzzy_dedup' AND r.source <> d.source").fetchall()[0][0]
    assert cross > 0


def test_a_worker_killed_mid_run_is_replaced_and_the_output_is_unchanged(local_run, tmp_path):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    watcher = Client(cluster.scheduler_address)
    out = str(tmp_path / "killed")
    box: dict = {}

    def run():
        try:
            box["result"] = run_curation(_config("dask", beam_args=[
                f"--dask_client_address={cluster.scheduler_address}"]), output=out)
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline, killed = time.time() + 240, None
        while time.time() < deadline and killed is None and thread.is_alive():
            busy = {w: n for w, n in watcher.processing().items() if n}
            if busy:  # a worker with tasks: kill its process, as the OOM killer would
                pids = watcher.run(os.getpid, workers=[next(iter(busy))])
                killed = next(iter(pids.values()))
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.5)
        thread.join(timeout=600)
        assert killed is not None, "no worker was ever busy"
        assert "error" not in box, box.get("error")
        assert _content(out) == _content(local_run)
        assert _counts(load_funnel(out)) == _counts(load_funnel(local_run))
    finally:
        watcher.close()
        cluster.close()


def test_the_dask_runner_needs_an_address_or_starts_a_cluster():
    from assay.pipelines.job.dask_cluster import dask_address, partition_args
    from assay.pipelines.job.runner import RunnerConfig, build_options

    with pytest.raises(ValueError, match="--dask-address"):
        build_options(RunnerConfig("dask"))
    runner, _ = build_options(RunnerConfig("dask", beam_args=["--dask_client_address=tcp://127.0.0.1:1"]))
    assert type(runner).__name__ == "DaskRunner"
    assert dask_address(["--x", "--dask_client_address", "tcp://h:1"]) == "tcp://h:1"
    assert partition_args([]) == ["--dask_partition_size=1"]
    assert partition_args(["--dask_npartitions=4"]) == ["--dask_npartitions=4"]
