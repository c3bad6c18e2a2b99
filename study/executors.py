"""How cells run: in this process, in fresh local worker processes (joblib's loky backend), or on a cluster.

An executor maps `attempt_cell` over cells and yields each (row, predictions) as soon as it finishes, in any
order. Executors never write the store; the driver does. Dask and Ray clusters live in `study.cluster`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from study.failures import FailureKind
from study.plan import Cell
from study.worker import WorkerContext, run_cell

if TYPE_CHECKING:
    from study.cluster import Cluster

log = logging.getLogger(__name__)

Result = tuple[dict, pd.DataFrame | None]


def attempt_cell(cell: Cell, context: WorkerContext, retries: int = 0) -> Result:
    """run_cell, tried again up to `retries` times while it fails with a retryable error; the row counts attempts."""
    for attempt in range(1, retries + 2):
        row, predictions = run_cell(cell, context)
        if row["status"] == "done" or row.get("failure") != FailureKind.RETRYABLE.value or attempt > retries:
            break
        log.warning("%s failed (%s); attempt %d of %d", cell.describe(), row["error"], attempt + 1, retries + 1)
    row.setdefault("failure", None)
    row["attempts"] = attempt
    return row, predictions


def available_cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_serial(cells: list[Cell], context: WorkerContext, retries: int = 0) -> Iterator[Result]:
    """Run cells one after another in this process."""
    for cell in cells:
        yield attempt_cell(cell, context, retries)


def run_local(cells: list[Cell], context: WorkerContext, jobs: int, retries: int = 0) -> Iterator[Result]:
    """Run cells in `jobs` fresh worker processes (loky starts them clean, never forks TensorFlow)."""
    from joblib import Parallel, delayed

    # one cell per task: joblib's automatic batching would hold finished cells back until their batch ends, so a
    # kill would lose them, and would queue short cells behind each other on one worker while another idles
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered", pre_dispatch="n_jobs",
                        batch_size=1)
    yield from parallel(delayed(attempt_cell)(cell, context, retries) for cell in cells)


def execute(cells: list[Cell], context: WorkerContext, jobs: int, retries: int = 0,
            cluster: Cluster | None = None) -> Iterator[Result]:
    """Run cells on the cluster, with one worker in this process, or several worker processes; retryable failures
    retried."""
    if cluster is not None:
        return cluster.execute(cells, context, retries)
    if jobs <= 1 or len(cells) <= 1:
        return run_serial(cells, context, retries)
    return run_local(cells, context, min(jobs, len(cells)), retries)


def run_task(function, context: WorkerContext, *args, jobs: int, cluster: Cluster | None = None):
    """function(context, *args) on a cluster worker, in a worker process (reusing the sweep's pool), or here when
    jobs is 1."""
    if cluster is not None:
        return cluster.run_task(function, context, *args)
    if jobs <= 1:
        return function(context, *args)
    from joblib import Parallel, delayed

    # joblib runs n_jobs=1 in this process; with the sweep's n_jobs it reuses the sweep's loky workers
    return Parallel(n_jobs=jobs, backend="loky", batch_size=1)([delayed(function)(context, *args)])[0]
