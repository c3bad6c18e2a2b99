"""The trained models a run keeps (`run.keep_models`, `--keep-models`), settled after each sweep: the models the mode
no longer keeps are deleted, and the cells whose kept model is missing (stored by a run that kept none) are trained
again for it, their stored results left as they are."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from study.runner.events import RunEvents
from study.store.results import ResultStore

if TYPE_CHECKING:
    from study.execution.cluster import Cluster
    from study.execution.keeping import ModelKeeper
    from study.store.models import KeptModel
    from study.training.context import WorkerContext


def settle_models(keeper: ModelKeeper, context: WorkerContext, jobs: int, retries: int, cluster: Cluster | None,
                  events: RunEvents) -> None:
    """Delete the kept models the mode does not keep; train the cells whose model is missing again and keep theirs."""
    from study.execution.local import execute

    store = keeper.store
    missing = keeper.settle()
    if missing:
        events.training_for_models(len(missing))
    for row, predictions, model in execute(missing, context, jobs, retries, cluster=cluster):
        if model is None:
            events.model_not_kept(f"{row['arm']} fraction={row['fraction']:g} seed={row['seed']}",
                                  row["error"] or "its model could not be saved or did not reproduce the cell")
            continue
        store.models.put(_trained_again(model, predictions, store))
    events.models_kept(len(store.models.kept() & set(keeper.cells)), store.models.folder, keeper.mode)


STORED_VALUES = {"monitor": "monitor", "monitor_value": "monitor_value", "test_auc": "auc", "test_accuracy": "accuracy"}


def _trained_again(model: KeptModel, predictions, store: ResultStore) -> KeptModel:
    """The model with the largest difference between its test probabilities and the stored cell's in its description
    (0 when training again gave the stored cell exactly), and the stored cell's validation and test values, which
    made it the one kept."""
    stored_row = store.row(model.run_id) or {}
    model = replace(model, info={**model.info, **{key: stored_row[column] for key, column in STORED_VALUES.items()
                                                  if column in stored_row}})
    columns = [column for column in predictions.columns if column.startswith("prob_")]
    stored_predictions = store.predictions(model.run_id)
    if stored_predictions is None:  # the stored cell's predictions are unreadable: nothing to compare with
        return replace(model, info={**model.info, "trained_again": True, "stored_probability_difference": None})
    stored = stored_predictions.set_index("image_id").loc[predictions["image_id"], columns]
    difference = float(np.abs(stored.to_numpy() - predictions[columns].to_numpy()).max())
    return replace(model, info={**model.info, "trained_again": True, "stored_probability_difference": difference})
