"""Cells on a Ray cluster: an existing one, or a local Ray instance whose workers are separate processes.

Each cell is a Ray task that asks for the protocol's `train.threads` CPUs and trains with as many TensorFlow threads. A task whose
worker process or node dies is retried by Ray (MAX_RETRIES) on a live worker; then the cell is given up. A local
Ray instance started here ends with the driver (`lifeline.reap_when_gone`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from study.core.errors import StudyError
from study.execution.cluster import Cluster
from study.execution.lifeline import reap_when_gone
from study.training.process import available_cores
from study.execution.remote import run_on_worker
from study.training.context import WorkerContext

MAX_RETRIES = 3


class RayCluster(Cluster):
    """A Ray connection, with a remote version of the task function sized to the cluster."""

    kind = "ray"

    def __init__(self, address: str, jobs: int, threads: int):
        import ray

        self.ray = ray
        self.address = address
        self.jobs = jobs
        self.threads = threads
        self.task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(run_on_worker)

    @classmethod
    def connect(cls, address: str | None, jobs: int | None, cells: int, threads: int) -> RayCluster:
        """Connect to the Ray cluster at address, or start a local one with this machine's cores."""
        if address is None:
            # a local cluster serves this machine only: Ray then binds to the loopback address
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            reap_when_gone()  # Ray's agents would outlive a killed driver by a minute
            context = ray.init(num_cpus=available_cores(), include_dashboard=False, **options)
        else:
            try:
                context = ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise StudyError(f"--address {address}: no Ray cluster answered ({' '.join(str(exc).split())})") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        largest_node = max((int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]), default=0)
        if cpus == 0:
            ray.shutdown()
            raise StudyError(f"--address {address}: the Ray cluster has no CPUs to run cells on")
        if threads > largest_node:
            ray.shutdown()
            raise StudyError(f"train.threads is {threads}, but the largest node of the Ray cluster has {largest_node} "
                             "CPUs; lower train.threads (it is part of the run ids)")
        jobs = jobs or max(1, cpus // threads)
        if address is None:
            jobs = max(1, min(jobs, cells))
        # ray.init is annotated BaseContext: connected to a cluster (no ray:// client address), it is a RayContext
        return cls(context.address_info["gcs_address"], jobs, threads)  # type: ignore[attr-defined]

    def wait_any(self, handles: list) -> list:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return ready

    def submit(self, function, context: WorkerContext, item):
        return self.task.remote(function, context, item)

    def result(self, handle):
        return self.ray.get(handle)

    def worker_death(self, exc: Exception) -> str | None:
        from ray.exceptions import OutOfMemoryError, WorkerCrashedError

        if not isinstance(exc, (WorkerCrashedError, OutOfMemoryError)):
            return None
        return f"Ray gave up on it, the worker processes running it died ({' '.join(str(exc).split())})"

    def cancel(self, handles: list) -> None:
        for handle in handles:
            self.ray.cancel(handle, force=True)

    def close(self) -> None:
        self.ray.shutdown()
