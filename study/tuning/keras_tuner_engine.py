"""KerasTuner: a Bayesian-optimisation oracle per unit, its project directory in the results directory.

The oracle decides the values; the driver runs each trial in the worker pool and ends it with its validation
score. Projects are reloaded, never overwritten (the equivalent of `overwrite=False`): KerasTuner writes the oracle
and every trial to `<results>/<name>/tuning/keras_tuner/<unit>/` as it goes and, on reload, queues the trials that
were running again. KerasTuner's oracles do not prune.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from study.core.atomic_files import write_atomic
from study.core.vocabulary import TrialStatus, direction
from study.plan.tuning_units import TuningUnit
from study.protocol.schema import Protocol
from study.training.trial import TrialOutcome
from study.tuning.search import UnitSearch

ENDED = {"COMPLETED": "complete", "FAILED": "failed"}


def projects_dir(root: Path) -> Path:
    """`<results>/<name>/tuning/keras_tuner/`: one project directory per unit."""
    return Path(root) / "tuning" / "keras_tuner"


class KerasTunerSearch(UnitSearch):
    """A unit's KerasTuner oracle, loaded from its project directory when one exists."""

    def __init__(self, unit: TuningUnit, protocol: Protocol, root: Path):
        import keras_tuner

        super().__init__(unit, protocol, root)
        hyperparameters = keras_tuner.HyperParameters()
        for name, spec in self.space.items():
            if spec["kind"] == "int":
                hyperparameters.Int(name, spec["low"], spec["high"])
            else:
                sampling = "log" if spec["kind"] == "log" else "linear"
                hyperparameters.Float(name, spec["low"], spec["high"], sampling=sampling)
        self.oracle = keras_tuner.oracles.BayesianOptimizationOracle(
            objective=keras_tuner.Objective(self.metric, direction=direction(self.metric)[:3]),
            max_trials=self.budget, hyperparameters=hyperparameters, seed=protocol.tuning_spec().seed + 1,
            num_initial_points=max(1, min(10, self.budget // 2)), max_consecutive_failed_trials=self.budget + 1,
        )
        self.oracle.verbose = 0  # the library prints trial banners otherwise
        directory = projects_dir(root)
        directory.mkdir(parents=True, exist_ok=True)
        self.project_dir = directory / unit.name
        # a tuner sets its oracle's project; the oracle has no public setter (keras-tuner is pinned below 2 for it)
        self.oracle._set_project_dir(str(directory), unit.name)
        if (self.project_dir / "oracle.json").exists():
            self.oracle.reload()  # running trials of a killed run are queued again
        self._tuner_ids = itertools.count()
        self._running: dict[int, Any] = {}  # trial number -> its running KerasTuner trial

    def _ended(self):
        return [t for t in self.oracle.trials.values() if t.status in ENDED]

    def spent(self) -> int:
        return len(self._ended())

    def _ask(self):
        trial = self.oracle.create_trial(f"{self.unit.name}-{next(self._tuner_ids)}")
        if trial.status != "RUNNING":
            return None
        number = int(trial.trial_id)
        self._running[number] = trial
        return number, dict(trial.hyperparameters.values), None

    def _tell(self, outcome: TrialOutcome) -> None:
        trial = self._running.pop(outcome.number)
        if outcome.state == TrialStatus.COMPLETE:
            self.oracle.update_trial(trial.trial_id, {self.metric: outcome.value})
            trial.status = "COMPLETED"
        else:
            trial.status, trial.message = "FAILED", (outcome.error or "").splitlines()[0] if outcome.error else None
        self.oracle.end_trial(trial)
        # end_trial saves the oracle before it drops the trial from its ongoing ones: saved again, a reloaded oracle
        # would run the ended trial a second time
        self.oracle.save()
        seconds_path = self.project_dir / f"trial_{trial.trial_id}" / "seconds.json"
        write_atomic(seconds_path, json.dumps({"seconds": outcome.seconds}).encode())

    def best(self):
        ended = self._ended()
        counts = {TrialStatus.COMPLETE.value: sum(t.status == "COMPLETED" for t in ended), TrialStatus.PRUNED.value: 0,
                  TrialStatus.FAILED.value: sum(t.status == "FAILED" for t in ended)}
        seconds = float(sum(_seconds(self.project_dir / f"trial_{t.trial_id}") for t in ended))
        if not counts[TrialStatus.COMPLETE]:
            return None, {}, None, counts, seconds
        best = self.oracle.get_best_trials(1)[0]
        return int(best.trial_id), dict(best.hyperparameters.values), float(best.score), counts, seconds

    @staticmethod
    def progress(root: Path, protocol: Protocol, unit: TuningUnit) -> int:
        """Ended trials of a unit's project, read from its trial files (no KerasTuner or TensorFlow import)."""
        count = 0
        for path in (projects_dir(root) / unit.name).glob("trial_*/trial.json"):
            try:
                count += json.loads(path.read_text()).get("status") in ENDED
            except (OSError, ValueError):
                continue
        return count


def _seconds(trial_dir: Path) -> float:
    try:
        return float(json.loads((trial_dir / "seconds.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return 0.0

