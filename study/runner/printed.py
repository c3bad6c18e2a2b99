"""A run's events as a terminal or a notebook shows them: remarks on stderr, steps of the run on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from study.runner.events import RunEvents

if TYPE_CHECKING:
    from study.runner.execute import RunStart
    from study.runner.inputs import PlannedStudy


class PrintedEvents(RunEvents):
    """A run's events as the command line shows them: remarks on stderr, steps of the run on stdout."""

    def __init__(self, progress: bool = True):
        self.show_progress = progress

    def stored_fingerprint(self, error: Exception, path: Path) -> None:
        print(f"note: the dataset cannot be read here ({error}); run ids use the fingerprint the last run stored in "
              f"{path}", file=sys.stderr)

    def skipped_files(self, count: int, path: Path) -> None:
        print(f"note: skipped {count} unreadable or missing image files (dataset.on_bad_file: skip); listed in {path}",
              file=sys.stderr)

    def waiting(self, root: Path, holder: str) -> None:
        print(f"waiting: another `study run` is writing {root} ({holder})", file=sys.stderr, flush=True)

    def conformed(self, files: int) -> None:
        print(f"{files} stored files written before the store's schema rewritten in it (values unchanged)")

    def adopted(self, cells: int, results_dir: Path) -> None:
        print(f"{cells} cells copied from other protocols' stores in {results_dir} (same run ids: the same settings, "
              "data and seeds)")

    def connected(self, cluster: str) -> None:
        print(f"running on {cluster}", flush=True)

    def trial(self, unit, outcome, metric: str) -> None:
        value = "-" if outcome.value is None else f"{outcome.value:.3f}"
        print(f"[tuning] {unit.label} fraction={unit.fraction:g} trial {outcome.number}: {outcome.state} "
              f"{metric}={value} ({outcome.seconds:.0f} s)", file=sys.stderr, flush=True)

    def progress(self, total: int, done: int, expected: dict[str, float], workers: int):
        from study.runner.progress import SweepProgress

        return SweepProgress(total, done, expected, workers, enabled=self.show_progress)

    def training_for_models(self, cells: int) -> None:
        print(f"training {cells} cells stored without their model again, to keep their models (their stored results "
              "stay as they are)", flush=True)

    def model_not_kept(self, cell: str, error: str) -> None:
        print(f"note: no model kept for {cell}: training it again failed ({error})", file=sys.stderr)

    def models_kept(self, count: int, folder: Path, mode: str) -> None:
        which = "the best cell of each arm and fraction by validation" if mode == "best" else "every done cell"
        print(f"{count} models kept in {folder} ({which}; `study predict MODEL IMAGES` applies one)")

    def no_feature_map(self, error: Exception) -> None:
        print(f"note: no feature map for the report ({type(error).__name__}: {error})", file=sys.stderr)

    def looks_planned(self, plan) -> None:
        print(f"until decided: looks planned at {', '.join(map(str, plan.counts()))} seeds ({plan.method})",
              flush=True)

    def targeted(self, seeds: int, pairs: list[tuple[str, float]], every: int) -> None:
        print(f"seeds up to {seeds} train {len(pairs)} of {every} arm x fraction pairs: those the open claims read",
              flush=True)

    def look(self, number: int, looks: int, seeds: int, open_claims: list[str], futile: list[str]) -> None:
        state = f"undecided: {', '.join(open_claims)}" if open_claims else (
            "no claim open" if futile else "every claim decided")
        undecidable = f"; undecidable within the planned seeds (futility): {', '.join(futile)}" if futile else ""
        print(f"look {number} of {looks} at {seeds} seeds: {state}{undecidable}", flush=True)


def start_line(planned: PlannedStudy, start: RunStart, executor: str) -> str:
    """The line a run begins with: its cells, how many are stored, and how many will run where."""
    where = f"with {start.jobs} worker(s)" if executor == "local" else f"on {executor}"
    return (f"{planned.protocol.name}: {len(planned.cells)} cells, {len(planned.cells) - len(start.todo)} stored, "
            f"{len(start.todo)} to run {where}")
