"""What a run tells as it goes. The library calls these methods; the command line prints them.

Every method here does nothing, so a caller that wants quiet passes `RunEvents()`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from study.analysis.sequential import SequentialPlan
    from study.execution.scheduler import SweepSummary
    from study.plan.cells import Cell
    from study.plan.tuning_units import TuningUnit
    from study.training.trial import TrialOutcome


class CellProgress:
    """Told of every cell that starts and every cell that finishes during a sweep."""

    def started(self, cell: Cell) -> None:
        """A worker took the cell."""

    def update(self, row: dict, summary: SweepSummary) -> None:
        """One more cell finished (row as stored, summary so far)."""


class RunEvents:
    """The events of a run, each a method that does nothing here."""

    def stored_fingerprint(self, error: Exception, path: Path) -> None:
        """The dataset cannot be read here (error): run ids use the fingerprint the last run stored in path."""

    def skipped_files(self, count: int, path: Path) -> None:
        """The dataset skipped count unreadable or missing files, listed in path."""

    def waiting(self, root: Path, holder: str) -> None:
        """Another run (holder) writes the results in root; this one waits for it."""

    def conformed(self, files: int) -> None:
        """files stored before the store's schema were rewritten in it."""

    def adopted(self, cells: int, results_dir: Path) -> None:
        """cells were copied from other protocols' stores in results_dir."""

    def connected(self, cluster: str) -> None:
        """The run goes to the cluster described."""

    def trial(self, unit: TuningUnit, outcome: TrialOutcome, metric: str) -> None:
        """A tuning trial of unit finished, scored on metric."""

    def progress(self, total: int, done: int, expected: dict[str, float], workers: int) -> AbstractContextManager[Any]:
        """A context for the sweep of total cells, done of them stored, whose value (a CellProgress) is told each cell
        that starts and finishes; expected: run_id -> estimated seconds of each cell to run, on `workers` at once."""
        return nullcontext(CellProgress())

    def training_for_models(self, cells: int) -> None:
        """cells stored without their model are trained again for it (their stored results stay)."""

    def model_not_kept(self, cell: str, error: str) -> None:
        """Training cell again for its model failed with error."""

    def models_kept(self, count: int, folder: Path, mode: str) -> None:
        """count models of the protocol's cells are kept in folder (mode: best or all)."""

    def no_feature_map(self, error: Exception) -> None:
        """The report's feature map could not be computed (error); the results stand."""

    def looks_planned(self, plan: SequentialPlan) -> None:
        """--until-decided will look at the claims at plan.counts() seeds."""

    def targeted(self, seeds: int, pairs: list[tuple[str, float]], every: int) -> None:
        """The seeds added up to `seeds` train only these (arm, fraction) pairs of every pair the protocol has."""

    def look(self, number: int, looks: int, seeds: int, open_claims: list[str], futile: list[str]) -> None:
        """Look number of looks was made at seeds seeds; the claims still open, and those stopped for futility."""
