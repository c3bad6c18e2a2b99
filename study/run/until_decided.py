"""`study run --until-decided`: sweep the protocol's seeds, test the claims, and add seeds look by look until every
claim is decided or the last planned look is made (study.analysis.sequential); each look is recorded in the store
as it is made."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from study.core.errors import StudyError
from study.protocol.schema import Protocol
from study.run.events import RunEvents
from study.run.inputs import CheckedData, PlannedStudy, replan, study_data
from study.run.options import RunOptions
from study.run.sweep import SweepOutcome, sweep

if TYPE_CHECKING:
    from study.analysis.sequential import SequentialPlan
    from study.execution.cluster import Cluster


def sequential_plan(protocol: Protocol, protocol_path: Path, options: RunOptions) -> SequentialPlan:
    """The looks of --until-decided, checked against the protocol."""
    from study.analysis.sequential import SequentialPlan

    if not protocol.claims:
        raise StudyError(f"{protocol_path}: --until-decided needs claims to decide, and the protocol has none")
    given = {"max_seeds": options.max_seeds, "seeds_per_round": options.seeds_per_round}
    try:
        return SequentialPlan(protocol.seed_list(), **{name: value for name, value in given.items() if value})
    except ValueError as exc:
        raise StudyError(str(exc)) from None


def sweep_until_decided(study: PlannedStudy, options: RunOptions, data: CheckedData, jobs: int,
                        cluster: Cluster | None, events: RunEvents) -> SweepOutcome:
    """Sweep look by look, each at more seeds, until every claim is decided or the last look is made; the outcome
    counts the cells of every look."""
    from study.analysis.sequential import (
        EVERY_CLAIM_DECIDED,
        LAST_LOOK_MADE,
        SequentialRecord,
        look_table,
        undecided,
        with_seeds,
    )
    from study.analysis.summaries import flagged, newest_per_key

    protocol = study.declared
    record = SequentialRecord(sequential_plan(protocol, study.protocol_path, options))
    counts = record.plan.counts()
    events.looks_planned(record.plan)
    elapsed, trained, retries = 0.0, 0, 0
    for count in counts:
        record.seeds_run = count
        study.store.put_sequential(record.to_dict())
        replan(study, with_seeds(protocol, record.plan.seeds(count)))
        if protocol.dataset.resplit:  # the added seeds' own splits, checked and stored like the protocol's
            data = study_data(study)
        outcome = sweep(study, options, data, jobs, cluster, events)
        summary = outcome.summary
        elapsed, trained, retries = elapsed + outcome.seconds, trained + summary.done, retries + summary.retries
        summary = replace(summary, done=trained, retries=retries, skipped=summary.total - trained - summary.failed)
        if summary.stopped or summary.failed:
            return SweepOutcome(summary, elapsed)
        record.looks.append(count)
        done, _ = newest_per_key(flagged(study.store.cells()))
        open_claims = undecided(look_table(done, protocol, record))
        events.look(len(record.looks), len(counts), count, open_claims)
        if not open_claims:
            record.stopped = EVERY_CLAIM_DECIDED
            break
    else:
        record.stopped = LAST_LOOK_MADE
    study.store.put_sequential(record.to_dict())
    return SweepOutcome(summary, elapsed)
