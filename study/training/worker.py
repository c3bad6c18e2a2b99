"""Run one cell in a worker process: load data, draw the training subset, build, fit, evaluate."""

from __future__ import annotations

import json
import logging
import platform
import time
import traceback
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from study.core.errors import DataError
from study.core.failures import failure_kind
from study.core.vocabulary import CLASSIFICATION_METRICS, CellStatus
from study.plan.cells import Cell
from study.store.models import KeptModel
from study.training import caches
from study.training.context import WorkerContext
from study.training.metrics import (
    choose_operating_point,
    classification_metrics,
    operating_metrics,
    ordinal_metrics,
)
from study.training.process import configure_tensorflow, die_if_asked
from study.training.rows import cell_row, failed_row
from study.training.subsets import cell_indices

log = logging.getLogger(__name__)


CellResult = tuple[dict, pd.DataFrame | None, KeptModel | None]  # the row, test predictions, trained model


def run_cell(cell: Cell, context: WorkerContext) -> CellResult:
    """Train and evaluate one cell: its row, its test predictions and, when the context keeps models, its trained
    model. Never raises: a failure comes back as a failed row."""
    started = datetime.now(timezone.utc)
    try:
        return _run(cell, context, started)
    except Exception as exc:  # a failed cell is a result, not the end of the sweep
        log.debug("cell %s failed", cell.run_id, exc_info=True)
        row = failed_row(cell, started, f"{type(exc).__name__}: {exc}", failure_kind(exc))
        row["traceback"] = traceback.format_exc(limit=8)
        return row, None, None


def _run(cell: Cell, context: WorkerContext, started: datetime) -> CellResult:
    configure_tensorflow(context.threads)
    settings = cell.settings
    dataset = caches.load_for(context, cell.seed)
    if context.fingerprint is not None and dataset.fingerprint != context.fingerprint:
        raise DataError(f"the dataset this worker ({platform.node()}) reads under {context.data_dir} differs from "
                        "the driver's; give every worker the same data directory (docs: Running on a cluster)")
    images = caches.preprocessed_images(context, settings.backbone.name, settings.backbone.weights)
    die_if_asked(cell)
    indices = cell_indices(dataset, cell.fraction, cell.seed)
    n_classes = len(dataset.class_names)

    clock = time.perf_counter()
    inputs = caches.model_inputs(cell, context, dataset, images)
    trainer = caches.trainer_for(cell, n_classes, context.caches)
    data = {part: (inputs[index], dataset.labels[index]) for part, index in indices.items()}
    result = trainer.fit(data, cell.seed, n_classes)
    train_seconds = time.perf_counter() - clock
    probabilities = trainer.predict(data["test"][0])
    labels = data["test"][1]
    scores = classification_metrics(labels, probabilities)
    prior = np.bincount(data["train"][1], minlength=n_classes) / len(data["train"][1])
    rule, point = choose_operating_point(data["val"][1], trainer.predict(data["val"][0]), prior)
    arm_model = trainer.arm_model

    row = cell_row(cell, started)
    row.update(
        status=CellStatus.DONE.value,
        n_train=int(len(indices["train"])),
        n_val=int(len(indices["val"])),
        n_test=int(len(indices["test"])),
        n_classes=n_classes,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        steps=result.steps,
        steps_per_epoch=result.steps_per_epoch,
        precise_bn=result.precise_bn,
        history_json=json.dumps(result.history),
        monitor=settings.train.monitor,
        monitor_value=result.best_value,
        train_seconds=train_seconds,
        trace_seconds=trainer.trace_seconds,
        trainable_params=int(sum(np.prod(v.shape) for v in arm_model.model.trainable_variables)),
        total_params=arm_model.total_params,
        blocks_kept=arm_model.blocks_kept,
        blocks_trained=arm_model.blocks_trained,
        cached_input_block=arm_model.input_block,
        caches=context.caches,
        **{name: scores[name] for name in (*CLASSIFICATION_METRICS, "majority_rate", "max_predicted_share")},
        **operating_metrics(labels, probabilities, rule, point, prior),
        **(ordinal_metrics(labels, probabilities) if settings.dataset.ordinal else {}),
        operating_rule=rule,
        operating_point=point,
    )
    row["finished_at"] = datetime.now(timezone.utc).isoformat()
    predictions = pd.DataFrame(
        {
            "run_id": cell.run_id,
            "image_id": dataset.ids[indices["test"]].astype(str),
            "label": labels.astype("int64"),
            "predicted": probabilities.argmax(axis=1).astype("int64"),
        }
    )
    for column in range(n_classes):
        predictions[f"prob_{column}"] = probabilities[:, column]
    predictions.attrs["class_names"] = list(dataset.class_names)
    model = None
    if context.keep_models:
        from study.training.export import kept_model

        try:  # the cell's result stands without its model; the run says which models it could not keep
            model = kept_model(cell, arm_model, dataset.class_names, row, images[indices["test"]], probabilities)
        except Exception as exc:  # noqa: BLE001 - saving a model must never fail a trained cell
            log.warning("%s: the trained model could not be kept (%s: %s)", cell.run_id, type(exc).__name__, exc)
    return row, predictions, model
