"""A progress display for sweeps: cells done/total, failures, elapsed time and ETA."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from study.core.vocabulary import CellStatus


class SweepProgress:
    """A rich progress bar on a terminal; one line per finished cell otherwise (logs, CI)."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        self.total, self.start_done = total, done
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.bar = Progress(
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task = self.bar.add_task("cells", total=total, completed=done, failed=0)

    def __enter__(self) -> SweepProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, row: dict, summary) -> None:
        """Advance by one finished cell."""
        self.bar.update(self.task, advance=1, failed=summary.failed)
        if not self.live:
            finished = self.start_done + summary.done + summary.failed
            outcome = row["status"] if row["status"] != CellStatus.DONE else f"auc={row.get('auc', float('nan')):.3f}"
            print(f"[{finished}/{self.total}] {row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {outcome}",
                  file=sys.stderr, flush=True)
