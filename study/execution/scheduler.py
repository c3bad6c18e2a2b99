"""Decide what runs: skip cells the store holds, dispatch the rest, store each result as it arrives."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from study.core.failures import FailureKind, FatalError
from study.core.vocabulary import CellStatus
from study.execution.local import execute
from study.plan.cells import Cell
from study.protocol.schema import RunSpec
from study.store.results import ResultStore
from study.training.context import WorkerContext

if TYPE_CHECKING:
    from study.execution.cluster import Cluster
    from study.execution.keeping import ModelKeeper

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    total: int
    skipped: int
    done: int = 0
    failed: int = 0
    retries: int = 0  # extra attempts spent on cells that failed with an ordinary error
    consecutive_failures: int = 0  # failed cells since the last one that finished
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the sweep stopped before every cell ran (fatal error, too many failures)

    def line(self, seconds: float) -> str:
        """The one-line outcome the CLI prints."""
        retried = f", {self.retries} retries" if self.retries else ""
        return f"{self.done} done, {self.failed} failed, {self.skipped} skipped{retried} in {seconds:.0f} s"


def cell_states(cells: list[Cell], store: ResultStore) -> dict[str, CellStatus]:
    """The state of every planned cell according to the store."""
    stored = store.statuses()
    return {cell.run_id: CellStatus(stored[cell.run_id]) if cell.run_id in stored else CellStatus.PENDING
            for cell in cells}


def cells_to_run(cells: list[Cell], store: ResultStore, retry_failed: bool) -> list[Cell]:
    """Pending cells, plus failed ones when retrying."""
    wanted = {CellStatus.PENDING, CellStatus.FAILED} if retry_failed else {CellStatus.PENDING}
    states = cell_states(cells, store)
    return [cell for cell in cells if states[cell.run_id] in wanted]


def dispatch_order(cells: list[Cell]) -> list[Cell]:
    """Longest cells first, cells of one arm back to back, and the first cell on cached features at the very front.

    Arms that train from the image (no cached frozen blocks) go first and their largest fractions first, so the
    short cached cells fill the workers' gaps at the end instead of one long cell running alone; cells of an arm
    stay together so each worker reuses its traced model. The first cell on cached features computes the features
    of every cached arm (features.cached_blocks): it goes first, so that no worker waits for them at the end.
    """
    from study.training.models.arm_network import frozen_boundary

    arm_rank = {label: rank for rank, label in enumerate(dict.fromkeys(cell.arm.label for cell in cells))}
    cached = {cell.run_id: frozen_boundary(cell.settings) is not None for cell in cells}
    order = sorted(cells, key=lambda cell: (cached[cell.run_id], arm_rank[cell.arm.label], -cell.fraction, cell.seed))
    first_cached = next((index for index, cell in enumerate(order) if cached[cell.run_id]), 0)
    return [order[first_cached], *order[:first_cached], *order[first_cached + 1 :]] if order else order


def run_sweep(
    cells: list[Cell],
    store: ResultStore,
    context: WorkerContext,
    jobs: int,
    retry_failed: bool = False,
    on_result: Callable[[dict, SweepSummary], None] | None = None,
    on_start: Callable[[Cell], None] | None = None,
    policy: RunSpec | None = None,
    extra: dict | None = None,
    cluster: Cluster | None = None,
    keeper: ModelKeeper | None = None,
) -> SweepSummary:
    """Run every cell the store lacks; each result (with `extra` columns) is stored the moment it arrives, through
    `keeper` when models are kept (the context then has workers send each cell's model back).

    Cells run on `cluster` when one is given (its workers never write the store), else on this machine; on_start
    is told each cell as a worker takes it, on_result each result once it is stored.

    Retryable failures are tried again in the worker (policy.retries); a cell whose worker process dies runs
    again alone and is stored failed (deterministic) when it kills that one too. A fatal error, the executor
    failing (the driver losing the cluster) or policy.max_consecutive_failures failed cells in a row stop the
    sweep with summary.stopped set.
    """
    policy = policy or RunSpec()
    todo = dispatch_order(cells_to_run(cells, store, retry_failed))
    summary = SweepSummary(total=len(cells), skipped=len(cells) - len(todo))
    log.info("%d cells, %d already stored, %d to run", len(cells), summary.skipped, len(todo))
    results = execute(_announced(todo, on_start) if on_start else todo, context, jobs, policy.retries, cluster=cluster)
    put = keeper.put if keeper is not None else store.put
    try:
        for row, predictions, model in _until_broken(results, summary):
            put({**row, **(extra or {})}, predictions, model)
            _count(row, summary)
            if on_result:
                on_result(row, summary)
            summary.stopped = _stop_reason(row, summary, policy)
            if summary.stopped:
                break
    except FatalError as exc:
        summary.stopped = str(exc)
    finally:
        results.close()  # stops the worker processes when the sweep ends early
    return summary


def _announced(cells: list[Cell], on_start: Callable[[Cell], None]) -> Iterator[Cell]:
    """The cells, each told to on_start as it is taken: the executors take a cell only when a worker is free."""
    for cell in cells:
        on_start(cell)
        yield cell


def _until_broken(results: Iterator, summary: SweepSummary) -> Iterator:
    """The executor's results until it is exhausted or breaks (the driver lost the cluster)."""
    while True:
        try:
            yield next(results)
        except StopIteration:
            return
        except Exception as exc:  # the executor itself failed: fatal, the finished cells are stored
            summary.stopped = (f"the worker processes failed ({type(exc).__name__}: {_one_line(exc)}); finished "
                               "cells are stored, run again to resume")
            return


def _count(row: dict, summary: SweepSummary) -> None:
    summary.retries += int(row.get("attempts") or 1) - 1
    if row["status"] == CellStatus.DONE:
        summary.done += 1
        summary.consecutive_failures = 0
        return
    summary.failed += 1
    summary.consecutive_failures += 1
    summary.errors.append(f"{row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {_one_line(row['error'])}")


def _stop_reason(row: dict, summary: SweepSummary, policy: RunSpec) -> str | None:
    if row.get("failure") == FailureKind.FATAL.value:
        return f"{row['arm']} fraction={row['fraction']:g} seed={row['seed']} failed fatally: {_one_line(row['error'])}"
    limit = policy.max_consecutive_failures
    if limit is not None and row["status"] != CellStatus.DONE and summary.consecutive_failures >= limit:
        return (f"{limit} cells failed in a row (run.max_consecutive_failures: {limit}); fix the cause in the errors "
                "below, then run again with --retry-failed")
    return None


def _one_line(error: object, limit: int = 400) -> str:
    """An error as one line (TensorFlow's span several), shortened to limit characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
