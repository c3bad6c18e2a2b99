"""How cells run: in this process, in fresh local worker processes (joblib's loky backend), or on a cluster.

An executor maps `attempt_cell` over cells and yields each (row, predictions) as soon as it finishes, in any
order; a cell given up because its worker process died comes back as a failed row (`lost_cell`). Executors never
write the store; the driver does. The local pool lives in `study.execution.pool`, Dask and Ray clusters in `study.execution.cluster`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd

from study.core.failures import FailureKind, WorkerLost
from study.plan.cells import Cell
from study.training.context import WorkerContext
from study.training.rows import failed_row
from study.training.worker import run_cell

if TYPE_CHECKING:
    from study.execution.cluster import Cluster

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


def lost_cell(cell: Cell, lost: WorkerLost) -> Result:
    """The failed row of a cell given up because its worker process died each time it ran (deterministic)."""
    row = failed_row(cell, datetime.now(timezone.utc), f"WorkerLost: {lost.reason}", FailureKind.DETERMINISTIC)
    row["attempts"] = lost.attempts
    return row, None


def cell_results(outcomes: Iterator[tuple[Cell, Result | WorkerLost]]) -> Iterator[Result]:
    """(cell, outcome) pairs as results, a WorkerLost as lost_cell; closing this closes outcomes (stops its workers)."""
    with closing(outcomes):
        for cell, outcome in outcomes:
            yield lost_cell(cell, outcome) if isinstance(outcome, WorkerLost) else outcome


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
    """Run cells in the pool of `jobs` fresh worker processes (loky starts them clean, never forks TensorFlow) that
    end with this one; a cell whose worker process dies runs again alone, and is stored failed when that process
    dies too. The tuning trials before and the feature map after reuse the same pool, with its caches."""
    from study.execution.pool import run_pooled

    # one cell per task: a finished cell comes back at once, so a kill loses only the cells that were running
    return cell_results(run_pooled(partial(attempt_cell, context=context, retries=retries), cells, jobs,
                                   context.log_dir))


def execute(cells: list[Cell], context: WorkerContext, jobs: int, retries: int = 0,
            cluster: Cluster | None = None) -> Iterator[Result]:
    """Run cells on the cluster, with one worker in this process (jobs 1), or in worker processes; retryable
    failures retried."""
    if cluster is not None:
        return cluster.execute(cells, context, retries)
    if jobs <= 1 or not cells:
        return run_serial(cells, context, retries)
    return run_local(cells, context, jobs, retries)  # `jobs` workers even for fewer cells: one pool for the whole run


def run_task(function, context: WorkerContext, *args, jobs: int, cluster: Cluster | None = None):
    """function(context, *args) on a cluster worker, in a worker process (reusing the sweep's pool), or here when
    jobs is 1."""
    if cluster is not None:
        return cluster.run_task(function, context, *args)
    if jobs <= 1:
        return function(context, *args)
    from study.execution.pool import worker_pool

    return worker_pool(jobs, context.log_dir).submit(function, context, *args).result()
