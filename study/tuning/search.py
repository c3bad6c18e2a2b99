"""What every engine's search of one unit offers the tuning phase, and the trials it hands out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from study.plan.cells import Cell
from study.plan.tuning_units import (
    TuningUnit,
    apply_values,
    complete_values,
    space_for,
    tuned_arm,
)
from study.protocol.schema import Protocol
from study.training.trial import EpochReporter, TrialOutcome, TrialTask


class UnitSearch(ABC):
    """The resumable search of one unit: hands out at most `trials` trials in all, takes their outcomes back.

    Each engine is a subclass opened as Engine(unit, protocol, root), its state kept under the results directory
    `root` after every ask and tell, so a killed run loses only the trials that were running; those run again (same
    values) on resume and never count twice. Engines are named in `study.tuning.engines`.
    """

    def __init__(self, unit: TuningUnit, protocol: Protocol, root: Path):
        self.unit = unit
        self.protocol = protocol
        self.root = Path(root)
        self.budget = protocol.tuning_spec().trials
        self.metric = protocol.tuning_metric()
        self.space = space_for(unit.base, protocol)
        self.in_flight = 0

    # ------------------------------------------------------------------------------- engine-specific
    @staticmethod
    @abstractmethod
    def progress(root: Path, protocol: Protocol, unit: TuningUnit) -> int:
        """Trials of the unit that finished, read from what `root` holds without importing the engine (0 before its
        search started): what `status` and `plan` print."""

    @abstractmethod
    def spent(self) -> int:
        """Trials that finished (complete, pruned or failed); interrupted ones do not count."""

    @abstractmethod
    def _ask(self) -> tuple[int, dict[str, Any], EpochReporter | None] | None:
        """The next trial's number, values and reporter, or None when the engine has no more to give."""

    @abstractmethod
    def _tell(self, outcome: TrialOutcome) -> None:
        """Record a trial's outcome in the engine's storage."""

    @abstractmethod
    def best(self) -> tuple[int | None, dict[str, Any], float | None, dict[str, int], float]:
        """The best complete trial's number, values, score (None, {}, None without one); counts per state (complete,
        pruned, failed); seconds spent on counted trials."""

    # ------------------------------------------------------------------------------------- shared
    def ask(self) -> TrialTask | None:
        """The next trial to run, or None when the budget is spent or handed out."""
        if self.spent() + self.in_flight >= self.budget:
            return None
        asked = self._ask()
        if asked is None:
            return None
        number, values, reporter = asked
        self.in_flight += 1
        return TrialTask(self.unit.key, number, self.trial_cell(number, values), self.metric, reporter)

    def tell(self, outcome: TrialOutcome) -> None:
        """Record the outcome of a trial this search handed out."""
        self.in_flight -= 1
        self._tell(outcome)

    def finished(self) -> bool:
        return self.in_flight == 0 and self.spent() >= self.budget

    def trial_cell(self, number: int, values: dict[str, Any]) -> Cell:
        """The settings a trial trains with: the unit's, with the trial's values, at the tuning seed."""
        settings = apply_values(self.unit.base, complete_values(values, self.unit.base, self.protocol))
        return Cell(f"{self.unit.name}-trial{number}", self.protocol.name, tuned_arm(self.unit.arm, settings),
                    self.unit.fraction, self.protocol.tuning_spec().seed, settings)

    def record(self) -> dict[str, Any]:
        """The unit's choice as the store keeps it: values, score, budget and what it was spent on."""
        tuning = self.protocol.tuning_spec()
        number, values, value, counts, seconds = self.best()
        return {
            "key": self.unit.key, "arm": self.unit.label, "fraction": self.unit.fraction, "engine": tuning.engine,
            "scope": tuning.scope, "trials": self.budget, "metric": self.metric,
            "values": complete_values(values, self.unit.base, self.protocol) if value is not None else {},
            "best_value": value,
            "best_trial": number, **counts, "trial_seconds": seconds,
        }
