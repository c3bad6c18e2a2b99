"""Decide what runs: skip cells the store holds, dispatch the rest, store each result as it arrives."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from study.executors import execute
from study.plan import Cell
from study.store import ResultStore
from study.worker import WorkerContext

log = logging.getLogger(__name__)


class CellState(enum.Enum):
    PENDING = "pending"  # not in the store; will run
    RUNNING = "running"  # dispatched in this sweep; a crash leaves it absent from the store, so it runs again
    DONE = "done"  # stored with metrics; never runs again
    FAILED = "failed"  # stored with its error; runs again only with --retry-failed


@dataclass
class SweepSummary:
    total: int
    skipped: int
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def cell_states(cells: list[Cell], store: ResultStore) -> dict[str, CellState]:
    """The state of every planned cell according to the store."""
    stored = store.statuses()
    return {cell.run_id: CellState(stored[cell.run_id]) if cell.run_id in stored else CellState.PENDING for cell in cells}


def cells_to_run(cells: list[Cell], store: ResultStore, retry_failed: bool) -> list[Cell]:
    """Pending cells, plus failed ones when retrying."""
    wanted = {CellState.PENDING, CellState.FAILED} if retry_failed else {CellState.PENDING}
    states = cell_states(cells, store)
    return [cell for cell in cells if states[cell.run_id] in wanted]


def dispatch_order(cells: list[Cell]) -> list[Cell]:
    """Cells of one arm back to back, so each worker reuses its traced model and cached features."""
    arm_rank = {label: rank for rank, label in enumerate(dict.fromkeys(cell.arm.label for cell in cells))}
    return sorted(cells, key=lambda cell: (arm_rank[cell.arm.label], cell.fraction, cell.seed))


def run_sweep(
    cells: list[Cell],
    store: ResultStore,
    context: WorkerContext,
    jobs: int,
    retry_failed: bool = False,
    on_result: Callable[[dict, SweepSummary], None] | None = None,
) -> SweepSummary:
    """Run every cell the store lacks; each result is stored the moment it arrives."""
    todo = dispatch_order(cells_to_run(cells, store, retry_failed))
    summary = SweepSummary(total=len(cells), skipped=len(cells) - len(todo))
    log.info("%d cells, %d already stored, %d to run", len(cells), summary.skipped, len(todo))
    for row, predictions in execute(todo, context, jobs):
        store.put(row, predictions)
        if row["status"] == CellState.DONE.value:
            summary.done += 1
        else:
            summary.failed += 1
            summary.errors.append(f"{row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {row['error']}")
        if on_result:
            on_result(row, summary)
    return summary
