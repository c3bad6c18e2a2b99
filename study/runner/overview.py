"""What `study status` and `study plan` show: the state of every planned cell, failures, tuning progress, and
before a run, its block map, cost and whether its seeds can decide its claims."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from study.core.vocabulary import CellStatus
from study.runner.inputs import CheckedData, PlannedStudy, study_data
from study.runner.options import worker_jobs

if TYPE_CHECKING:
    from study.protocol.blocks import BackboneInfo

STATES = tuple(state.value for state in (CellStatus.DONE, CellStatus.FAILED, CellStatus.PENDING))  # table columns


def state_table(planned: PlannedStudy, statuses: dict[str, str]) -> pd.DataFrame:
    """Done, failed and pending cells per arm (in the protocol's order) and fraction."""
    rows = [
        {
            "arm": cell.arm.label,
            "fraction": cell.fraction,
            "state": statuses.get(cell.run_id, CellStatus.PENDING.value),
        }
        for cell in planned.cells
    ]
    table = pd.crosstab([pd.Series([r["arm"] for r in rows], name="arm"), pd.Series([r["fraction"] for r in rows], name="fraction")],
                        pd.Series([r["state"] for r in rows], name="state"))
    for state in STATES:
        if state not in table:
            table[state] = 0
    order = list(dict.fromkeys(cell.arm.label for cell in planned.cells))
    table = table[list(STATES)].reset_index()
    table["arm"] = pd.Categorical(table["arm"], categories=order, ordered=True)
    return table.sort_values(["arm", "fraction"]).reset_index(drop=True)


def tuning_lines(planned: PlannedStudy) -> list[str]:
    """Tuning progress of a tuned protocol (nothing without tuning:)."""
    if planned.protocol.tuning is None:
        return []
    from study.tuning.phase import tuning_lines as unit_lines

    return unit_lines(planned.protocol, planned.store, planned.units)


@dataclass
class StudyStatus:
    """The state of a study's cells in its store."""

    holder: str | None  # the run writing the results now, if any
    tuning: list[str]
    table: pd.DataFrame  # state_table
    stale: int  # stored results the protocol does not plan (another version of it, or other data)
    failed: list[dict]  # the stored rows of failed planned cells, in plan order


def study_status(planned: PlannedStudy) -> StudyStatus:
    """Done, failed and pending cells per arm and fraction; the rows of failed cells."""
    from study.runner.lock import RunLock

    statuses = planned.store.statuses()
    table = state_table(planned, statuses)
    holder = RunLock(planned.store.root).held_elsewhere()
    tuning = tuning_lines(planned)
    stale = other_versions(planned, statuses)
    failed = [planned.store.row(run_id) if statuses.get(run_id) == CellStatus.FAILED else None
              for run_id in planned.planned_ids]
    return StudyStatus(holder, tuning, table, stale, [row for row in failed if row is not None])


def other_versions(planned: PlannedStudy, statuses: dict[str, str] | None = None) -> int:
    """How many stored results the protocol does not plan (another version of it, or other data): they stay in the
    store and are never read in place of a planned cell."""
    stored = planned.store.statuses() if statuses is None else statuses
    return len(set(stored) - set(planned.planned_ids))


OTHER_VERSIONS = ("{} stored results are not planned by this protocol (another version of it, or other data; kept, "
                  "not read; `study prune` deletes them)")


@dataclass
class StudyPlan:
    """What a study will run and what that costs."""

    block_map: BackboneInfo
    tuning: list[str]
    table: pd.DataFrame  # state_table
    cost: list[str]  # n_train per fraction, share warnings, estimated time per arm and in all
    # per claim, whether the seeds can decide it (and with a pilot, the seeds it needs); computed as it is read, so
    # that what the pilot's power analysis warns comes after the lines before it
    decidability: Iterable[str]

    @property
    def to_run(self) -> int:
        return int(self.table[CellStatus.PENDING.value].sum())


def study_plan(planned: PlannedStudy, jobs: int | None) -> StudyPlan:
    """The study's cells against its store, with the cost of the pending ones spread over jobs workers (None: as
    run would)."""
    from study.protocol.blocks import backbone_info

    data = study_data(planned)
    info = backbone_info(planned.protocol.backbone.name)
    tuning = tuning_lines(planned)
    statuses = planned.store.statuses()
    table = state_table(planned, statuses)
    return StudyPlan(info, tuning, table, cost_lines(planned, data, statuses, worker_jobs(jobs, planned.protocol)),
                     decidability_lines(planned))


def cost_lines(planned: PlannedStudy, data: CheckedData, statuses: dict[str, str], jobs: int) -> list[str]:
    """n_train per fraction (with a warning for a grouped fraction far off its share) and the estimated time of
    each arm's cells and of all of them, against jobs workers."""
    from study.runner import cost

    sizes = cost.subsets(data.dataset, data.splits, planned.protocol)
    pending = {cell.run_id for cell in planned.cells if cell.run_id not in statuses}
    arms = cost.arm_costs(planned.cells, sizes, cost.stored_seconds(planned.results_dir), pending)
    lines = [*cost.subset_lines(sizes, planned.protocol.fractions), *cost.share_warnings(sizes),
             *cost.cost_lines(arms, jobs)]
    if planned.units:
        lines.append(f"not in this estimate: tuning {len(planned.units)} arm(s) first, "
                     f"{planned.protocol.tuning_spec().trials} trials each, a trial costing about one cell at the "
                     "fraction tuned at")
    return lines


def decidability_lines(planned: PlannedStudy) -> Iterator[str]:
    """Per claim: whether the seeds can decide it, and with a stored pilot, the seeds it needs."""
    from study.analysis.claims import evaluate_claims
    from study.analysis.decidability import capacity_lines, pilot_lines
    from study.analysis.summaries import finished_cells

    protocol = planned.protocol
    yield from capacity_lines(protocol)
    done = finished_cells(planned.store, planned.planned_ids)
    if protocol.claims and not done.empty:
        summary, _ = evaluate_claims(done, protocol.claims, protocol.report, protocol.fractions)
        yield f"from the {len(done)} stored cells (a pilot):"
        for line in pilot_lines(summary, protocol):
            yield f"  {line}"
