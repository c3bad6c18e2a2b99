"""One tuning trial in a worker: train on the training subset, score on the validation split, nothing else.

The trial sees only train and validation indices (`train_val_indices`): no test image is trained on or
predicted, and no test label is read. It goes through the worker's caches like a cell (the frozen-block feature
cache, whose label-free features of every image are shared with the sweep, and the traced model of its structure).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as Interface

from study.core.vocabulary import TrialStatus
from study.plan.cells import Cell
from study.training.context import WorkerContext

log = logging.getLogger(__name__)


class TrialPruned(Exception):
    """The engine stopped this trial after an epoch: its validation curve lags behind earlier trials."""


class EpochReporter(Interface):
    """Where a trial sends its per-epoch validation value; returns True when the trial should stop."""

    def __call__(self, epoch: int, value: float) -> bool: ...


@dataclass(frozen=True)
class TrialTask:
    """A trial as the driver hands it to a worker."""

    unit: str  # the unit's key
    number: int  # the engine's trial number within the unit
    cell: Cell  # the trial's settings (tuned values applied) at the unit's fraction and the tuning seed
    metric: str  # validation metric: val_auc, val_loss, val_accuracy or val_balanced_accuracy
    reporter: EpochReporter | None = None  # per-epoch reports and pruning (Optuna); None: no pruning


@dataclass
class TrialOutcome:
    """What a trial gives back: its state, its score (the metric at the epoch kept) and the per-epoch curve."""

    unit: str
    number: int
    state: TrialStatus
    value: float | None = None
    curve: list[float] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    error: str | None = None
    parts: tuple[str, ...] = ()  # the splits the trial read (train and val, never test)
    worker: str = ""  # host:pid of the process that ran the trial


def evaluate_trial(context: WorkerContext, task: TrialTask) -> TrialOutcome:
    """Train the trial's settings on train, report each epoch's validation value, return the validation score."""
    clock = time.perf_counter()
    curve: list[float] = []
    try:
        return _evaluate(task, context, curve, clock)
    except TrialPruned:
        return TrialOutcome(task.unit, task.number, TrialStatus.PRUNED, curve[-1] if curve else None, curve, len(curve),
                            time.perf_counter() - clock, parts=("train", "val"), worker=_this_worker())
    except Exception as exc:  # a failed trial is an outcome (e.g. a rate so high the loss diverges)
        log.debug("trial %s/%d failed", task.unit, task.number, exc_info=True)
        return TrialOutcome(task.unit, task.number, TrialStatus.FAILED, None, curve, len(curve),
                            time.perf_counter() - clock,
                            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}",
                            worker=_this_worker())


def _this_worker() -> str:
    return f"{platform.node()}:{os.getpid()}"


def _evaluate(task: TrialTask, context: WorkerContext, curve: list[float], clock: float) -> TrialOutcome:
    from study.training import caches
    from study.training.process import configure_tensorflow, die_if_asked
    from study.training.subsets import train_val_indices
    from study.training.train import monitored_value

    configure_tensorflow(context.threads)
    cell = task.cell
    dataset = caches.load_for(context, cell.seed)
    images = caches.preprocessed_images(context, cell.settings.backbone.name, cell.settings.backbone.weights)
    die_if_asked(cell)
    indices = train_val_indices(dataset, cell.fraction, cell.seed)
    n_classes = len(dataset.class_names)
    inputs = caches.model_inputs(cell, context, dataset, images)
    trainer = caches.trainer_for(cell, n_classes, context.caches)
    data = {part: (inputs[index], dataset.labels[index]) for part, index in indices.items()}
    y_val = data["val"][1]

    def on_epoch(epoch: int, probabilities: Any) -> None:
        value = monitored_value(task.metric, y_val, probabilities)
        curve.append(value)
        if task.reporter is not None and task.reporter(epoch, value):
            raise TrialPruned(f"pruned after epoch {epoch}")

    result = trainer.fit(data, cell.seed, n_classes, on_epoch)
    value = curve[result.best_epoch - 1]
    if not math.isfinite(value):
        raise ValueError(f"the validation {task.metric} is {value}")
    return TrialOutcome(task.unit, task.number, TrialStatus.COMPLETE, value, curve, result.epochs,
                        time.perf_counter() - clock, parts=tuple(indices), worker=_this_worker())
