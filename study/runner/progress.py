"""A progress display for sweeps: cells done/total, failures, elapsed time, the ETA and the cells running.

The ETA comes from each cell's expected seconds, the estimate `study plan` prints (study.runner.cost): the expected
seconds left, scaled by how long the finished cells took against their estimates, over the workers.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from study.core.vocabulary import CellStatus

if TYPE_CHECKING:
    from study.plan.cells import Cell


def remaining_seconds(waiting: Iterable[float], running: Iterable[tuple[float, float]],
                      finished: Iterable[tuple[float, float]], workers: int) -> float:
    """The seconds a sweep has left: the expected seconds of the cells waiting and what is left of those running,
    (expected, elapsed), scaled by the ratio of observed to expected seconds, over the workers, or over the cells left
    when fewer. The ratio is that of the finished cells, (expected, observed), where there are any, else 1; a running
    cell counts in it too, as taking the longer of its elapsed seconds and its scaled estimate, so that cells running
    past their estimates raise it before they finish."""
    waiting, running, finished = list(waiting), list(running), list(finished)
    observed, expected_finished = sum(seconds for _, seconds in finished), sum(seconds for seconds, _ in finished)
    finished_ratio = observed / expected_finished if expected_finished > 0 else 1.0
    observed += sum(max(elapsed, expected * finished_ratio) for expected, elapsed in running)
    expected_counted = expected_finished + sum(expected for expected, _ in running)
    ratio = observed / expected_counted if expected_counted > 0 else finished_ratio
    left = sum(expected * ratio for expected in waiting)
    left += sum(max(expected * ratio - elapsed, 0.0) for expected, elapsed in running)
    return left / max(1, min(workers, len(waiting) + len(running)))


class SweepProgress:
    """A rich progress bar on a terminal, with the ETA and a line naming the cells running; one line per finished
    cell otherwise (logs, CI)."""

    def __init__(self, total: int, done: int, expected: dict[str, float], workers: int, enabled: bool = True):
        self.total, self.start_done = total, done
        self.expected, self.workers = expected, workers  # run_id -> estimated seconds of each cell to run
        self.running: dict[str, tuple[Cell, float]] = {}  # run_id -> the cell and when it started
        self.finished: list[tuple[float, float]] = []  # (expected, observed) seconds of each cell done
        self.ended: set[str] = set()  # run ids of the cells finished, done or failed
        self.lock = threading.Lock()  # the display refreshes from its own thread
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.bar = _BarWithRunning(
            self.running_line,
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            _EtaColumn(self.eta),
            console=self.console,
            disable=not self.live,
        )
        self.task = self.bar.add_task("cells", total=total, completed=done, failed=0)

    def __enter__(self) -> SweepProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def started(self, cell: Cell) -> None:
        """A worker took the cell."""
        with self.lock:
            self.running[cell.run_id] = (cell, time.monotonic())

    def update(self, row: dict, summary) -> None:
        """Advance by one finished cell."""
        with self.lock:
            _, began = self.running.pop(row["run_id"], (None, None))
            self.ended.add(row["run_id"])
            if row["status"] == CellStatus.DONE and began is not None:
                self.finished.append((self.expected.get(row["run_id"], 0.0), time.monotonic() - began))
        self.bar.update(self.task, advance=1, failed=summary.failed)
        if not self.live:
            finished = self.start_done + summary.done + summary.failed
            outcome = row["status"] if row["status"] != CellStatus.DONE else f"auc={row.get('auc', float('nan')):.3f}"
            print(f"[{finished}/{self.total}] {row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {outcome}",
                  file=sys.stderr, flush=True)

    def eta(self) -> float:
        """The seconds the sweep has left (remaining_seconds), now."""
        now = time.monotonic()
        with self.lock:
            waiting = [seconds for run_id, seconds in self.expected.items()
                       if run_id not in self.running and run_id not in self.ended]
            running = [(self.expected.get(run_id, 0.0), now - began) for run_id, (_, began) in self.running.items()]
            return remaining_seconds(waiting, running, self.finished, self.workers)

    def running_line(self) -> str:
        """The cells running, in the order they started ('' when none)."""
        with self.lock:
            cells = [cell for cell, _ in self.running.values()]
        if not cells:
            return ""
        return "running: " + ", ".join(f"{cell.arm.label} f={cell.fraction:g} s={cell.seed}" for cell in cells)


class _EtaColumn(ProgressColumn):
    """'ETA h:mm:ss' from a function giving the seconds left."""

    def __init__(self, seconds_left: Callable[[], float]):
        super().__init__()
        self.seconds_left = seconds_left

    def render(self, task: Task) -> Text:
        return Text(f"ETA {timedelta(seconds=round(self.seconds_left()))}", style="progress.remaining")


class _BarWithRunning(Progress):
    """The progress bar with a line under it from a function (none when it gives '')."""

    def __init__(self, line: Callable[[], str], *columns: ProgressColumn, **kwargs):
        self.line = line  # before Progress renders the first time
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        line = self.line()
        if line:
            yield Text(line, no_wrap=True, overflow="ellipsis")
