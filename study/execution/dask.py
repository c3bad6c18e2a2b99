"""Cells on a Dask cluster (dask.distributed): an existing scheduler, or a LocalCluster of worker processes.

Each worker trains one cell at a time with the protocol's TensorFlow threads (train.threads). A worker that
dies mid-cell is replaced (its nanny restarts it) and the scheduler runs the cell again on a live worker, up to
its `allowed-failures` (once on a LocalCluster started here, as locally); then the cell is given up (KilledWorker).
"""

from __future__ import annotations

import logging
import random

import dask
import dask.sizeof
from distributed import Client, KilledWorker, LocalCluster, wait

from study.core.errors import StudyError
from study.execution.cluster import CONNECT_SECONDS, Cluster
from study.training.process import available_cores
from study.execution.remote import run_on_worker
from study.training.context import WorkerContext


def _own_sizeof_sampling() -> None:
    """Give dask.sizeof a random generator of its own.

    The worker sizes every message it sends (heartbeats too) with `random.sample`, in its event-loop thread,
    while a cell runs; Keras draws the seeds of initial weights from the same process-wide `random`. Sharing
    it would make a cell's initial weights depend on the worker's traffic, and results on where a cell ran.
    """
    if not isinstance(dask.sizeof.random, random.Random):
        dask.sizeof.random = random.Random()  # type: ignore[assignment]  # dask.sizeof only calls random.sample


def dask_task(function, context: WorkerContext, item):
    """function(context, item) on this Dask worker."""
    _own_sizeof_sampling()
    return run_on_worker(function, context, item)


class DaskCluster(Cluster):
    """A Dask client, and the LocalCluster behind it when this process started one."""

    kind = "dask"

    def __init__(self, client: Client, local: LocalCluster | None, jobs: int):
        self.client = client
        self.local = local
        self.address = client.scheduler.address
        self.jobs = jobs

    @classmethod
    def connect(cls, address: str | None, jobs: int | None, cells: int, threads: int) -> DaskCluster:
        """Connect to the scheduler at address, or start a LocalCluster of min(jobs, cells) worker processes of
        `threads` threads each (default jobs: cores / threads)."""
        logging.getLogger("distributed").setLevel(logging.getLogger().getEffectiveLevel())  # quiet unless -v
        if address is None:
            workers = max(1, min(jobs or available_cores() // threads, cells))
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # a cell's worker dies: once more
                local = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                     dashboard_address=None)
            return cls(Client(local), local, workers)
        try:
            client = Client(address, timeout=f"{CONNECT_SECONDS}s")
        except (OSError, ValueError) as exc:
            raise StudyError(f"--address {address}: no Dask scheduler answered ({exc})") from None
        workers = len(client.nthreads())
        if workers == 0:
            client.close()
            raise StudyError(f"--address {address}: the Dask scheduler has no workers; start some with "
                             f"`dask worker {address}`")
        return cls(client, None, jobs or workers)

    def wait_any(self, handles: list) -> list:
        return list(wait(handles, return_when="FIRST_COMPLETED").done)

    def submit(self, function, context: WorkerContext, item):
        return self.client.submit(dask_task, function, context, item, pure=False)

    def result(self, handle):
        return handle.result()

    def worker_death(self, exc: Exception) -> str | None:
        if not isinstance(exc, KilledWorker):
            return None
        return f"the Dask scheduler gave up on it, the worker processes running it died ({' '.join(str(exc).split())})"

    def cancel(self, handles: list) -> None:
        if handles:
            self.client.cancel(handles)

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()
