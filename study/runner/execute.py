"""`study run` as a use case: what the run will do (checked before anything runs), and the run itself: on a
cluster or here, one sweep or look by look until the claims are decided, then the report."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from study.core.backend import require_tensorflow
from study.core.errors import StudyError, UsageError
from study.core.vocabulary import KEEP_MODELS
from study.plan.cells import Cell
from study.runner.events import RunEvents
from study.runner.inputs import CheckedData, PlannedStudy, study_data
from study.runner.options import RunOptions, worker_jobs

if TYPE_CHECKING:
    import pandas as pd

    from study.analysis.sequential import SequentialPlan
    from study.execution.scheduler import SweepSummary


@dataclass
class RunStart:
    """What a run will work on: the checked data, its workers, the cells the store lacks, and warnings about
    grouped fractions whose share of the training split is far off."""

    data: CheckedData
    jobs: int
    todo: list[Cell]
    share_warnings: list[str]


def check_options(options: RunOptions) -> None:
    """Refuse flags that need another flag, and a cluster executor whose packages are not installed: before the
    study is opened, so that nothing is read, trained or stored."""
    from study.execution.executor_registry import executor_kind

    if options.address is not None and options.executor == "local":
        raise UsageError("--address needs --executor dask or --executor ray")
    if not options.until_decided and (options.max_seeds or options.seeds_per_round):
        raise UsageError("--max-seeds and --seeds-per-round need --until-decided")
    executor = executor_kind(options.executor)
    if options.keep_models is not None and options.keep_models not in KEEP_MODELS:
        raise UsageError(f"unknown keep_models {options.keep_models!r}: one of {', '.join(KEEP_MODELS)}")
    executor.require_packages()


def start_run(open_planned: Callable[[], PlannedStudy], options: RunOptions, dry_run: bool = False
              ) -> tuple[PlannedStudy, RunStart]:
    """Check the options before anything is read, open the study, refuse while another run writes its results
    (unless the options wait, or nothing will run), and check the data: the study and what the run works on."""
    from study.runner.lock import RunLock

    check_options(options)
    planned = open_planned()
    if not (options.wait or dry_run):
        RunLock(planned.store.root).refuse_if_held()
    return planned, prepare_run(planned, options)


def prepare_run(planned: PlannedStudy, options: RunOptions) -> RunStart:
    """Check the data (the options are checked first: `start_run`); what the run will work on."""
    from study.execution.scheduler import cells_to_run
    from study.runner.cost import share_warnings, subsets

    jobs = worker_jobs(options.jobs, planned.protocol)
    data = study_data(planned)
    warnings = share_warnings(subsets(data.dataset, data.splits, planned.protocol))
    return RunStart(data, jobs, cells_to_run(planned.cells, planned.store, options.retry_failed), warnings)


def looks(planned: PlannedStudy, options: RunOptions) -> SequentialPlan | None:
    """The looks a run with --until-decided plans (None without it)."""
    from study.runner.until_decided import sequential_plan

    return sequential_plan(planned.declared, planned.protocol_path, options) if options.until_decided else None


@dataclass
class RunOutcome:
    """What a run did: its sweep's summary and seconds, the report's index.html and its tables by name (None and
    empty when the sweep stopped before the report), and why the report could not be written (its folder
    read-only or full: report None, the tables kept)."""

    summary: SweepSummary
    seconds: float
    report: Path | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    report_error: StudyError | None = None

    def claim_lines(self) -> list[str]:
        """Each claim's verdict in a line (none without claims or a report)."""
        from study.report.answer import claim_lines

        claims = self.tables.get("claims")
        return [] if claims is None else claim_lines(claims)


def run_study(planned: PlannedStudy, options: RunOptions, start: RunStart, events: RunEvents) -> RunOutcome:
    """Run every cell the store lacks (tuning first, when the protocol tunes), on the cluster the options name or
    here, then build the report unless the sweep stopped (a report that cannot be written is told in the outcome:
    the cells are stored)."""
    from study.report.build import stored_document
    from study.report.render.output_folder import write_document
    from study.runner.sweep import sweep
    from study.runner.until_decided import sweep_until_decided

    if options.executor == "local" and start.todo:  # cluster workers bring their own TensorFlow
        require_tensorflow()
    with _cluster(options, len(start.todo), planned.protocol.train.threads) as cluster:
        if cluster is not None:
            events.connected(cluster.describe())
        run = sweep_until_decided if options.until_decided else sweep
        outcome = run(planned, options, start.data, start.jobs, cluster, events)
    if outcome.summary.stopped:
        return RunOutcome(outcome.summary, outcome.seconds, None)
    document = stored_document(planned.protocol, planned.store, planned.planned_ids)
    try:
        report = write_document(document, planned.report_dir)[0]
    except StudyError as exc:
        return RunOutcome(outcome.summary, outcome.seconds, None, document.frames(), exc)
    return RunOutcome(outcome.summary, outcome.seconds, report, document.frames())


def _cluster(options: RunOptions, cells: int, threads: int):
    """The Dask or Ray cluster the run uses (connected before the results are touched), or None for local."""
    if options.executor == "local":
        return nullcontext(None)
    from study.execution.connect import open_cluster

    return open_cluster(options.executor, options.address, options.jobs, cells, threads)
