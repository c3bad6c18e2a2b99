"""`study run --until-decided`: sweep the protocol's seeds, test the claims, and add seeds look by look until every
claim is decided or the last planned look is made (study.analysis.sequential); each look is recorded in the store
as it is made."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.core.errors import StudyError, UsageError
from study.protocol.arms import protocol_arms
from study.protocol.schema import Protocol
from study.runner.events import RunEvents
from study.runner.inputs import CheckedData, PlannedStudy, replan, study_data
from study.runner.options import RunOptions
from study.runner.sweep import SweepOutcome, sweep

if TYPE_CHECKING:
    from study.analysis.sequential import SequentialPlan
    from study.execution.cluster import Cluster


def sequential_plan(protocol: Protocol, protocol_path: Path, options: RunOptions) -> SequentialPlan:
    """The looks of --until-decided, checked against the protocol."""
    from study.analysis.sequential import SequentialPlan

    if not protocol.claims:
        raise UsageError(f"{protocol_path}: --until-decided needs claims to decide, and the protocol has none")
    given: dict[str, Any] = {"max_seeds": options.max_seeds, "seeds_per_round": options.seeds_per_round}
    try:
        return SequentialPlan(protocol.seed_list(), **{name: value for name, value in given.items() if value})
    except ValueError as exc:
        raise StudyError(str(exc)) from None


def sweep_until_decided(planned: PlannedStudy, options: RunOptions, data: CheckedData, jobs: int,
                        cluster: Cluster | None, events: RunEvents) -> SweepOutcome:
    """Sweep look by look, each at more seeds, until no claim is open (each decided, or stopped for futility) or the
    last look is made; the seeds a look adds train only the cells the open claims read. The outcome counts the
    cells of every look."""
    from study.analysis.sequential import LAST_LOOK_MADE, SequentialRecord, make_look, target_look, with_seeds
    from study.analysis.summaries import finished_cells

    protocol = planned.declared
    record = SequentialRecord(sequential_plan(protocol, planned.protocol_path, options))
    counts = record.plan.counts()
    events.looks_planned(record.plan)
    elapsed, trained, retries = 0.0, 0, 0
    still_open = [claim.id for claim in protocol.claims]
    futile: list[str] = []
    for count in counts:
        target_look(record, count, still_open, protocol)
        if count in record.targets:
            events.targeted(count, record.targets[count], len(protocol_arms(protocol)) * len(protocol.fractions))
        planned.store.put_sequential(record.to_dict())
        replan(planned, with_seeds(protocol, record.plan.seeds(count)), record)
        if protocol.dataset.resplit:  # the added seeds' own splits, checked and stored like the protocol's
            data = study_data(planned)
        outcome = sweep(planned, options, data, jobs, cluster, events)
        summary = outcome.summary
        elapsed, trained, retries = elapsed + outcome.seconds, trained + summary.done, retries + summary.retries
        summary = replace(summary, done=trained, retries=retries, skipped=summary.total - trained - summary.failed)
        if summary.stopped or summary.failed:
            return SweepOutcome(summary, elapsed)
        done = finished_cells(planned.store, planned.planned_ids)
        look = make_look(done, protocol, record, count)
        still_open, futile = look.still_open, futile + look.futile
        events.look(len(record.looks), len(counts), count, still_open, futile)
        if not still_open:
            break
    else:
        record.stopped = LAST_LOOK_MADE
    planned.store.put_sequential(record.to_dict())
    return SweepOutcome(summary, elapsed)
