"""A local `dask.distributed` cluster for `assay run --runner dask` without a scheduler address.

Worker processes (not threads: the stages hold models and C extensions), one thread each, so a run on a
laptop exercises the same distributed path (serialised DoFns, tasks retried on another worker when one
dies) as a real cluster. The cluster lives for one run and is closed after it.
"""
from __future__ import annotations

import contextlib
import logging


def dask_address(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--dask_client_address="):
            return arg.split("=", 1)[1]
        if arg == "--dask_client_address" and i + 1 < len(args):
            return args[i + 1]
    return None


@contextlib.contextmanager
def local_cluster(workers: int):
    """Yields the scheduler address of a fresh local cluster of `workers` processes."""
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        raise ImportError("the dask runner needs dask.distributed: pip install 'assay[dask]' "
                          "(or 'dask[distributed]')") from None

    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        close_clients()
        cluster.close()


def close_clients() -> None:
    """Close the client the DaskRunner opened (it never closes it), so it does not try to reconnect to a
    scheduler that is going away."""
    try:
        from distributed import default_client
    except ImportError:
        return
    while True:
        try:
            client = default_client()
        except ValueError:  # no client left
            return
        client.close()


def partition_args(args: list[str]) -> list[str]:
    """One input file per Dask partition unless the user chose: the DaskRunner's default puts up to 128
    Create elements in one partition, which would run every per-document stage of a run in one task."""
    if any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
        return args
    return [*args, "--dask_partition_size=1"]
