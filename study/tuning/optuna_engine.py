"""Optuna: one SQLite file per protocol and scope in the results directory, one study per unit.

The driver alone asks and tells (TPE sampler, seeded). Workers open the same storage only to report each epoch's
validation value to their running trial and ask the median pruner whether to stop (SQLite serialises the writes;
connections wait up to a minute for the lock). Trials left RUNNING by a killed run are marked failed with the
user attribute `interrupted` and their values are queued again, so a resumed search ends with exactly `trials`
complete, pruned or failed trials. A database that SQLite cannot read stops the command with one line naming it: deleting
it searches again (its trials run again).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.core.errors import StudyError
from study.core.vocabulary import TrialStatus, direction
from study.plan.tuning_units import TuningUnit
from study.protocol.schema import Protocol
from study.training.trial import TrialOutcome
from study.tuning.search import UnitSearch

log = logging.getLogger(__name__)

SQLITE_TIMEOUT_S = 60
INTERRUPTED = "interrupted"


def database_path(root: Path, protocol: Protocol) -> Path:
    """`<results>/<name>/tuning/optuna-<name>-<scope>.db`."""
    return Path(root) / "tuning" / f"optuna-{protocol.name}-{protocol.tuning_spec().scope}.db"


@contextlib.contextmanager
def readable(path: Path):
    """Turn SQLite finding path damaged (not a database, malformed) into a StudyError saying how to heal it."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    try:
        yield
    except DatabaseError as exc:
        if isinstance(exc, OperationalError):  # locked, or the folder unwritable: not damage
            raise
        raise StudyError(f"{path}: not a readable Optuna database ({exc.orig}); delete it and `study run` searches "
                         "again (its trials run again)") from None


@functools.lru_cache(maxsize=4)
def storage(url: str):
    """The RDB storage of a SQLite URL, waiting for a locked database instead of failing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})


def pruner(spec: dict[str, Any]):
    """The pruner a protocol's tuning.pruner names."""
    import optuna

    if spec["kind"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=spec["startup_trials"], n_warmup_steps=spec["warmup_epochs"])


@dataclass(frozen=True)
class OptunaReporter:
    """Reports a worker's per-epoch validation value to its trial in the shared storage; True means prune."""

    url: str
    study_name: str
    trial_id: int
    pruner: dict[str, Any]

    def __call__(self, epoch: int, value: float) -> bool:
        import optuna

        optuna_study = optuna.load_study(study_name=self.study_name, storage=storage(self.url), pruner=pruner(self.pruner))
        trial = optuna.trial.Trial(optuna_study, self.trial_id)
        trial.report(value, epoch)
        return trial.should_prune()


class OptunaSearch(UnitSearch):
    """A unit's Optuna study, created or loaded (load_if_exists) from the protocol's SQLite file."""

    def __init__(self, unit: TuningUnit, protocol: Protocol, root: Path):
        import optuna

        super().__init__(unit, protocol, root)
        path = database_path(root, protocol)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{path}"
        startup = max(1, min(10, self.budget // 2))
        with readable(path):  # opening the storage reads the file already
            self.storage = storage(self.url)
            self.optuna_study = optuna.create_study(
                storage=self.storage, study_name=unit.name,
                direction=optuna.study.StudyDirection[direction(self.metric).name], load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=protocol.tuning_spec().seed, n_startup_trials=startup),
                pruner=pruner(protocol.tuning_spec().pruner.model_dump()),
            )
            self.study_id = self.storage.get_study_id_from_name(unit.name)
            self._requeue_interrupted()

    def _trial_id(self, number: int) -> int:
        """The storage's id of the unit's trial `number`."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _requeue_interrupted(self) -> None:
        from optuna.trial import TrialState

        for trial in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.storage.set_trial_user_attr(self._trial_id(trial.number), INTERRUPTED, True)
            self.optuna_study.tell(trial.number, state=TrialState.FAIL)
            self.optuna_study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
            log.info("%s: trial %d was interrupted; its values run again", self.unit.name, trial.number)

    def _counted(self):
        from optuna.trial import TrialState

        ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return [t for t in self.optuna_study.get_trials(deepcopy=False, states=ended) if not t.user_attrs.get(INTERRUPTED)]

    def spent(self) -> int:
        return len(self._counted())

    def _ask(self):
        distributions = {name: _distribution(spec) for name, spec in self.space.items()}
        trial = self.optuna_study.ask(distributions)
        reporter = OptunaReporter(self.url, self.unit.name, self._trial_id(trial.number),
                                  self.protocol.tuning.pruner.model_dump())
        return trial.number, trial.params, reporter

    def _tell(self, outcome: TrialOutcome) -> None:
        from optuna.trial import TrialState

        trial_id = self._trial_id(outcome.number)
        self.storage.set_trial_user_attr(trial_id, "seconds", outcome.seconds)
        if outcome.error:
            self.storage.set_trial_user_attr(trial_id, "error", outcome.error.splitlines()[0])
        if outcome.state == TrialStatus.COMPLETE:
            self.optuna_study.tell(outcome.number, outcome.value)
        else:
            self.optuna_study.tell(outcome.number, state=TrialState.PRUNED if outcome.state == TrialStatus.PRUNED else TrialState.FAIL)

    def best(self):
        from optuna.trial import TrialState

        counted = self._counted()
        counts = {state.value: sum(t.state == value for t in counted) for state, value in
                  ((TrialStatus.COMPLETE, TrialState.COMPLETE), (TrialStatus.PRUNED, TrialState.PRUNED),
                   (TrialStatus.FAILED, TrialState.FAIL))}
        seconds = float(sum(t.user_attrs.get("seconds", 0.0) for t in counted))
        if not counts[TrialStatus.COMPLETE]:
            return None, {}, None, counts, seconds
        best = self.optuna_study.best_trial
        return best.number, best.params, best.value, counts, seconds

    @staticmethod
    def progress(root: Path, protocol: Protocol, unit: TuningUnit) -> int:
        """Finished trials of a unit's study (0 when the database or the study does not exist yet)."""
        path = database_path(root, protocol)
        if not path.exists():
            return 0
        import optuna
        from optuna.trial import TrialState

        ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        with readable(path):
            try:
                optuna_study = optuna.load_study(study_name=unit.name, storage=storage(f"sqlite:///{path}"))
            except KeyError:
                return 0
            return sum(not t.user_attrs.get(INTERRUPTED) for t in optuna_study.get_trials(deepcopy=False, states=ended))


def _distribution(spec: dict[str, Any]):
    from optuna.distributions import FloatDistribution, IntDistribution

    if spec["kind"] == "int":
        return IntDistribution(spec["low"], spec["high"])
    return FloatDistribution(spec["low"], spec["high"], log=spec["kind"] == "log")
