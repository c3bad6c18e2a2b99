"""How work runs: in this process, in fresh local worker processes (joblib's loky backend), or on a cluster.

`map_unordered` is the one route from the driver to workers: the sweep's cells (`execute`), the tuning trials
(`study.tuning.phase`) and single tasks (`run_task`) all go through it, to an executor (`study.execution.executor`).
It yields each (item, outcome) as soon as it finishes, in any order; an item given up because its worker process
died comes back as `WorkerLost`, and a cell as a failed row (`lost_cell`). Workers never write the store; the driver
does. The executors are named in `study.execution.executor_registry`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from study.core.errors import StudyError
from study.core.failures import FailureKind, WorkerLost
from study.core.vocabulary import CellStatus
from study.plan.cells import Cell
from study.training.context import WorkerContext
from study.training.rows import failed_row
from study.training.worker import CellResult, run_cell

if TYPE_CHECKING:
    from study.execution.cluster import Cluster

log = logging.getLogger(__name__)


def attempt_cell(context: WorkerContext, cell: Cell, retries: int = 0) -> CellResult:
    """run_cell, tried again up to `retries` times while it fails with a retryable error; the row counts attempts."""
    for attempt in range(1, retries + 2):
        row, predictions, model = run_cell(cell, context)
        if row["status"] == CellStatus.DONE or row.get("failure") != FailureKind.RETRYABLE.value or attempt > retries:
            break
        log.warning("%s failed (%s); attempt %d of %d", cell.describe(), row["error"], attempt + 1, retries + 1)
    row.setdefault("failure", None)
    row["attempts"] = attempt
    return row, predictions, model


def lost_cell(cell: Cell, lost: WorkerLost) -> CellResult:
    """The failed row of a cell given up because its worker process died each time it ran (deterministic)."""
    row = failed_row(cell, datetime.now(timezone.utc), f"WorkerLost: {lost.reason}", FailureKind.DETERMINISTIC)
    row["attempts"] = lost.attempts
    return row, None, None


def cell_results(outcomes: Generator[tuple[Cell, CellResult | WorkerLost], None, None]
                 ) -> Generator[CellResult, None, None]:
    """(cell, outcome) pairs as results, a WorkerLost as lost_cell; closing this closes outcomes (stops its workers)."""
    with closing(outcomes):
        for cell, outcome in outcomes:
            yield lost_cell(cell, outcome) if isinstance(outcome, WorkerLost) else outcome


def map_unordered(function: Callable[[WorkerContext, Any], Any], items: Iterable, context: WorkerContext, jobs: int,
                  cluster: Cluster | None = None) -> Generator[tuple[Any, Any], None, None]:
    """(item, function(context, item)) for each item, as each finishes (`Executor.map_unordered`): on the cluster when
    one is given, else on the local executor of `jobs` workers (this process for one; else fresh local worker
    processes, started clean by loky, never forking TensorFlow, that end with this one and are shared by every call
    with their caches).

    An item whose worker process died comes back with WorkerLost in place of what it returned: locally after it ran
    again alone in a fresh process and died there too; on a cluster after the cluster's own retries."""
    from study.execution.local_executor import local_executor

    return (cluster or local_executor(jobs)).map_unordered(function, items, context)


def execute(cells: Iterable[Cell], context: WorkerContext, jobs: int, retries: int = 0,
            cluster: Cluster | None = None) -> Generator[CellResult, None, None]:
    """Run cells through map_unordered (`jobs` local workers even for fewer cells: one pool for the whole run), each
    tried again while it fails with a retryable error; yield each (row, predictions, model) as it finishes. A cell
    whose worker process died each time it ran comes back as a failed row."""
    # one cell per task: a finished cell comes back at once, so a kill loses only the cells that were running
    return cell_results(map_unordered(partial(attempt_cell, retries=retries), cells, context, jobs, cluster))


def run_task(function, context: WorkerContext, *args, jobs: int, cluster: Cluster | None = None):
    """function(context, *args) through map_unordered: on a cluster worker, in a local worker process (the sweep's
    pool, with its caches), or here when jobs is 1; raises StudyError when its worker process died each time."""
    [(_, outcome)] = map_unordered(partial(_called_with, function), [args], context, jobs, cluster)
    if isinstance(outcome, WorkerLost):
        raise StudyError(f"its worker process died: {outcome.reason}")
    return outcome


def _called_with(function, context: WorkerContext, args: tuple):
    return function(context, *args)
