"""One sweep of a study, under its run lock: store the inputs, adopt cells other protocols finished, tune, run
every cell the store lacks through the scheduler, and export the report's feature map."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from study.plan.cells import Cell, network_settings, plan_cells
from study.runner.events import RunEvents
from study.runner.inputs import CheckedData, PlannedStudy, store_inputs, targeted
from study.runner.options import RunOptions, keep_models

if TYPE_CHECKING:
    from study.execution.cluster import Cluster
    from study.execution.scheduler import SweepSummary
    from study.training.context import WorkerContext


@dataclass
class SweepOutcome:
    """What a sweep did, and how long it took."""

    summary: SweepSummary
    seconds: float


def worker_context(planned: PlannedStudy, data: CheckedData, keep_models: bool) -> WorkerContext:
    """What every worker of the study's sweep needs (with keep_models, each cell's trained model comes back too);
    absolute paths: cluster workers need not share this process's directory."""
    from study.training.context import WorkerContext
    from study.training.features import cached_blocks

    return WorkerContext(
        dataset=planned.protocol.dataset.model_dump(),
        data_dir=str(planned.data_dir.absolute()) if planned.data_dir else None,
        cache_dir=str((planned.results_dir / ".cache").absolute()),
        threads=planned.protocol.train.threads,
        fingerprint=data.dataset.fingerprint,
        cached_blocks=cached_blocks(planned.cells),
        log_dir=str(planned.store.logs_dir.absolute()),
        keep_models=keep_models,
    )


def sweep(planned: PlannedStudy, options: RunOptions, data: CheckedData, jobs: int, cluster: Cluster | None,
          events: RunEvents) -> SweepOutcome:
    """Under the run lock: store the inputs, run the sweep, settle the kept models, export the feature map."""
    from study.execution.keeping import ModelKeeper
    from study.execution.scheduler import cells_to_run, run_sweep
    from study.runner.cost import cell_seconds, stored_seconds, subsets
    from study.runner.kept_models import settle_models
    from study.runner.lock import RunLock
    from study.runner.reuse import adopt_finished_cells

    store = planned.store
    lock = RunLock(store.root)
    lock.acquire(wait=options.wait, on_wait=lambda holder: events.waiting(store.root, holder))
    try:
        store.remove_temporary()
        rewritten = store.conform_files()
        if rewritten:
            events.conformed(rewritten)
        store_inputs(planned, data, events)
        adopted = adopt_finished_cells(planned.cells, store)
        if adopted:
            events.adopted(adopted, planned.results_dir)
        mode = keep_models(options, planned.protocol)
        context = worker_context(planned, data, keep_models=mode != "none")
        if planned.units:
            planned.cells = tune(planned, context, jobs, cluster, events)
        keeper = ModelKeeper(mode, planned.cells, store) if mode != "none" else None
        todo = cells_to_run(planned.cells, store, options.retry_failed)  # a run we waited for may have stored some
        extra = {"skipped_files": len(data.dataset.skipped), "source_file": data.dataset.source_file}
        expected = cell_seconds(todo, subsets(data.dataset, data.splits, planned.protocol),
                                stored_seconds(planned.results_dir))
        workers = cluster.jobs if cluster is not None else jobs
        started = time.perf_counter()
        with events.progress(len(planned.cells), len(planned.cells) - len(todo), expected, workers) as progress:
            summary = run_sweep(planned.cells, store, context, jobs, options.retry_failed, on_result=progress.update,
                                on_start=progress.started, policy=planned.protocol.run, extra=extra, cluster=cluster,
                                keeper=keeper)
        if keeper is not None and not summary.stopped:
            settle_models(keeper, context, jobs, planned.protocol.run.retries, cluster, events)
        elapsed = time.perf_counter() - started
        if not summary.stopped:
            export_features(planned, context, jobs, cluster, events)
    finally:
        lock.release()
    return SweepOutcome(summary, elapsed)


def tune(planned: PlannedStudy, context: WorkerContext, jobs: int, cluster: Cluster | None,
         events: RunEvents) -> list[Cell]:
    """Run the tuning phase (validation split only, on the cluster when one is given); the cells planned with the
    chosen values."""
    from study.tuning.phase import run_tuning

    metric = planned.protocol.tuning_metric()
    choices = run_tuning(planned.protocol, planned.store, planned.units, context, jobs,
                         on_trial=lambda unit, outcome: events.trial(unit, outcome, metric), cluster=cluster)
    cells = targeted(plan_cells(planned.protocol, planned.fingerprint, choices), planned.record)
    awaiting = [cell.describe() for cell in cells if cell.awaiting_tuning]
    if awaiting:
        raise RuntimeError(f"internal error: cells without tuned values after tuning: {awaiting[:3]}")
    return cells


def export_features(planned: PlannedStudy, context: WorkerContext, jobs: int, cluster: Cluster | None,
                    events: RunEvents) -> None:
    """Store the pretrained backbone's features once per protocol (no pretrained weights, no map), and again when
    the stored file is missing, truncated or garbage.

    A worker computes them; this process writes them, as it writes every result."""
    from study.analysis.embedding import features_path, readable_features
    from study.execution.local import run_task
    from study.training.feature_map import feature_map, write_feature_map

    protocol = planned.protocol
    path = features_path(planned.store.root, protocol.backbone.name, protocol.dataset.size)
    if protocol.backbone.weights == "none" or readable_features(path):
        return
    try:
        write_feature_map(path, run_task(feature_map, context, network_settings(protocol), jobs=jobs, cluster=cluster))
    except Exception as exc:  # the map is an extra: the sweep's results stand without it
        events.no_feature_map(exc)
