"""The tuning phase of `study run`: every unit's trials through the worker pool, then each unit's choice stored.

Trials of all units go through `study.execution.local.map_unordered` like the sweep's cells: one pool of fresh
worker processes with the sweep's WorkerContext, so their traced models and cached features carry over to the
sweep. The driver asks the engine for a trial when a worker is free and tells it the outcome; units are dispatched
one after another so that a worker keeps reusing one traced model. A unit whose budget is spent is stored as a choice
(`ResultStore.put_tuning`) and is never tuned again; a changed budget continues the same search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from study.core.errors import StudyError
from study.core.failures import WorkerLost
from study.core.vocabulary import TrialStatus
from study.plan.tuning_units import TuningUnit
from study.protocol.schema import Protocol
from study.store.results import ResultStore
from study.store.tuning_choices import current_choices
from study.training.trial import TrialOutcome, TrialTask, evaluate_trial
from study.tuning.engines import engine_search
from study.tuning.search import UnitSearch

if TYPE_CHECKING:  # the worker module imports scikit-learn; status and plan read this module
    from study.execution.cluster import Cluster
    from study.training.context import WorkerContext

log = logging.getLogger(__name__)


def open_search(unit: TuningUnit, protocol: Protocol, root: Path) -> UnitSearch:
    """The engine's search of a unit, resumed from what the results directory holds."""
    return engine_search(protocol.tuning_spec().engine)(unit, protocol, root)


def run_tuning(protocol: Protocol, store: ResultStore, units: list[TuningUnit], context: WorkerContext, jobs: int,
               on_trial: Callable[[TuningUnit, TrialOutcome], None] | None = None,
               cluster: Cluster | None = None) -> dict[str, dict]:
    """Tune every unit without a stored choice (trials on the cluster when one is given); the choices of all units
    (unit key -> record)."""
    choices = current_choices(store.tuning_records(), protocol)
    searches = {unit.key: open_search(unit, protocol, store.root) for unit in units if unit.key not in choices}
    by_key = {unit.key: unit for unit in units}

    last_error: dict[str, str] = {}  # unit key -> the first line of its latest failed trial's error

    def finish(search: UnitSearch) -> None:
        record = search.record()
        if record["best_value"] is None:
            error = last_error.get(search.unit.key)
            raise StudyError(f"tuning {search.unit.label} at fraction {search.unit.fraction:g}: none of its "
                             f"{search.budget} trials completed ({record['failed']} failed, {record['pruned']} "
                             "pruned); narrow tuning.space (e.g. lower learning rates)"
                             + (f"; the last trial failed with {error}" if error else ""))
        store.put_tuning(record)
        choices[search.unit.key] = record
        log.info("tuned %s at fraction %g: %s", search.unit.label, search.unit.fraction, record["values"])

    for search in searches.values():
        if search.finished():
            finish(search)
    for outcome in dispatch([s for s in searches.values() if s.unit.key not in choices], context, jobs, cluster):
        search = searches[outcome.unit]
        if outcome.error:
            last_error[outcome.unit] = outcome.error.splitlines()[0]
        if on_trial:
            on_trial(by_key[outcome.unit], outcome)
        if search.finished():
            finish(search)
    return choices


def dispatch(searches: list[UnitSearch], context: WorkerContext, jobs: int,
             cluster: Cluster | None = None) -> Iterator[TrialOutcome]:
    """Run the searches' trials, each told to its search as it finishes: on the cluster when one is given, else in
    local worker processes, or in this process when jobs is 1. A trial whose worker process died each time it ran
    counts as failed."""
    from study.execution.local import map_unordered  # imports the worker module

    by_key = {search.unit.key: search for search in searches}

    def tasks() -> Iterator[TrialTask]:  # asked for only when a worker is free, after the last outcome was told
        for search in searches:
            while (task := search.ask()) is not None:
                yield task

    for task, outcome in map_unordered(evaluate_trial, tasks(), context, jobs, cluster):
        if isinstance(outcome, WorkerLost):
            outcome = lost_trial(task, outcome)
        by_key[outcome.unit].tell(outcome)
        yield outcome


def lost_trial(task: TrialTask, lost: WorkerLost) -> TrialOutcome:
    """The failed outcome of a trial given up because its worker process died each time it ran."""
    return TrialOutcome(task.unit, task.number, TrialStatus.FAILED, error=f"WorkerLost: {lost.reason}")


def tuning_lines(protocol: Protocol, store: ResultStore, units: list[TuningUnit]) -> list[str]:
    """What `status` and `plan` print about tuning: per unit, the trials finished of the budget."""
    if protocol.tuning is None:
        return []
    tuning = protocol.tuning
    choices = current_choices(store.tuning_records(), protocol)
    lines = [f"tuning ({tuning.engine}, {tuning.trials} trials per arm, scope {tuning.scope}, "
             f"{protocol.tuning_metric()} on the validation split): {len(choices)} of {len(units)} tuned"]
    for unit in units:
        if unit.key in choices:
            record = choices[unit.key]
            values = ", ".join(f"{name}={value:.3g}" for name, value in sorted(record["values"].items()))
            lines.append(f"  {unit.label} fraction={unit.fraction:g}: tuned ({values}; best {record['metric']} "
                         f"{record['best_value']:.3f})")
        else:
            lines.append(f"  {unit.label} fraction={unit.fraction:g}: {_progress(protocol, store, unit)}/"
                         f"{tuning.trials} trials")
    return lines


def _progress(protocol: Protocol, store: ResultStore, unit: TuningUnit) -> int:
    return engine_search(protocol.tuning_spec().engine).progress(store.root, protocol, unit)
