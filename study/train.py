"""Fit one model with per-group learning rates and early stopping on the validation split; predict."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from study.errors import StudyError
from study.metrics import classification_metrics
from study.models.strategies import ArmModel

log = logging.getLogger(__name__)

PREDICT_BATCH = 256
MINIMISED = {"val_loss"}

EpochHook = Callable[[int, np.ndarray], None]


class TrainingFailed(StudyError):
    """Training could not go on (e.g. the loss became NaN); the cell is stored as failed."""


@dataclass
class FitResult:
    epochs: int  # epochs run
    best_epoch: int  # 1-based epoch whose weights were kept
    best_value: float  # the monitored validation value at best_epoch
    history: list[dict[str, float]] = field(default_factory=list)


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights: balanced (n / (k * n_c)) or all ones."""
    if mode == "none":
        return np.ones(n_classes, dtype="float32")
    counts = np.bincount(labels, minlength=n_classes).astype("float64")
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype("float32")


def _optimizer(kind: str, learning_rate: float, weight_decay: float):
    import keras

    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, weight_decay=weight_decay or None)
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


class Trainer:
    """A traced training step and predictor for one model structure, reused across cells.

    Tracing a fresh model costs far more than training it on a few hundred images, so a worker keeps one
    Trainer per structure and `reset`s it to each cell's freshly initialised weights: the result equals that of
    the fresh model, because every variable (weights, batch-norm statistics, random-generator states) and every
    optimizer slot is set to what a fresh build and a fresh optimizer would hold.
    """

    def __init__(self, arm_model: ArmModel, train: dict[str, Any]):
        self.arm_model = arm_model
        self.train = train
        self.optimizers = [
            (variables, _optimizer(train["optimizer"], 1e-3, train["weight_decay"]))
            for variables in arm_model.variable_groups()
        ]
        for variables, optimizer in self.optimizers:
            optimizer.build(variables)
        clock = time.perf_counter()
        self.step = self._traced_step()
        self.predict = predictor(arm_model.model)
        self.trace_seconds = time.perf_counter() - clock  # paid once per structure, not per cell

    def reset(self, initial: list, lr_backbone: float, lr_head: float, lr_output: float | None = None) -> None:
        """Take the initial state of a fresh model of the same structure (its variables or their values, in
        model.variables order), and fresh optimizers.

        The head's output layer learns at lr_output, or at lr_head when that is None.
        """
        ours = self.arm_model.model.variables
        if [tuple(v.shape) for v in ours] != [tuple(v.shape) for v in initial]:
            raise RuntimeError("internal error: a reused model got a fresh model of another structure")
        for target, source in zip(ours, initial):
            target.assign(source)
        rates = (lr_backbone, lr_head, lr_head if lr_output is None else lr_output)
        for (_, optimizer), rate in zip(self.optimizers, rates):
            for variable in optimizer.variables:
                variable.assign(np.zeros(variable.shape, variable.dtype))
            optimizer.learning_rate.assign(rate)

    def _traced_step(self):
        import tensorflow as tf

        model = self.arm_model.model
        groups = [(variables, optimizer) for variables, optimizer in self.optimizers if variables]
        trainable = [variable for variables, _ in groups for variable in variables]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, *model.input_shape[1:]], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.float32),
            ]
        )
        def step(inputs, labels, weights):
            with tf.GradientTape() as tape:
                probabilities = model(inputs, training=True)
                losses = tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities)
                loss = tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)
                if model.losses:
                    loss += tf.add_n(model.losses)
            gradients = tape.gradient(loss, trainable)
            start = 0
            for variables, optimizer in groups:
                optimizer.apply_gradients(zip(gradients[start : start + len(variables)], variables))
                start += len(variables)
            return loss

        step.get_concrete_function()  # trace now, so its cost is measured apart from training
        return step

    def fit(self, data: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, n_classes: int,
            on_epoch: EpochHook | None = None) -> FitResult:
        """Train on data['train'], select the epoch by data['val'] (never test); keep the best epoch's weights.

        on_epoch(epoch, validation probabilities) runs after each epoch's validation (tuning reports and prunes
        there; an exception it raises ends the fit).
        """
        return _fit(self, data, seed, n_classes, on_epoch)


def predictor(model):
    """A traced inference function over batches of model inputs, returning float64 probabilities."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
    def forward(inputs):
        return model(inputs, training=False)

    forward.get_concrete_function()

    def predict(inputs: np.ndarray) -> np.ndarray:
        parts = [forward(inputs[i : i + PREDICT_BATCH]).numpy() for i in range(0, len(inputs), PREDICT_BATCH)]
        probabilities = np.concatenate(parts).astype("float64")
        return probabilities / probabilities.sum(axis=1, keepdims=True)  # exact sums after float32 softmax

    return predict


def monitored_value(name: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """A validation metric (val_auc, val_loss, ...) of probabilities; accuracy where AUC is undefined."""
    values = classification_metrics(labels, probabilities)
    key = {"val_auc": "auc", "val_loss": "log_loss", "val_accuracy": "accuracy"}.get(name, name.removeprefix("val_"))
    value = values[key]
    return value if not math.isnan(value) else values["accuracy"]


def _fit(trainer: Trainer, data: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, n_classes: int,
         on_epoch: EpochHook | None) -> FitResult:
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    train = trainer.train
    model = trainer.arm_model.model
    weight_of_class = class_weights(y_train, n_classes, train["class_weight"])
    rng = np.random.default_rng(seed)
    stopping = train["early_stopping"] or {"monitor": "val_loss", "patience": train["epochs"] + 1}
    monitor, patience = stopping["monitor"], stopping["patience"]
    sign = -1.0 if monitor in MINIMISED else 1.0
    best = FitResult(epochs=0, best_epoch=0, best_value=-math.inf)
    best_weights = None
    batch = train["batch_size"]
    for epoch in range(1, train["epochs"] + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            labels = y_train[index]
            losses.append(float(trainer.step(x_train[index], labels.astype("int32"), weight_of_class[labels])))
        mean_loss = float(np.mean(losses))
        if not math.isfinite(mean_loss):
            raise TrainingFailed(f"the training loss became {mean_loss} in epoch {epoch}; lower the learning rate")
        probabilities = trainer.predict(x_val)
        value = monitored_value(monitor, y_val, probabilities)
        best.history.append({"epoch": epoch, "loss": mean_loss, monitor: value})
        best.epochs = epoch
        if on_epoch is not None:
            on_epoch(epoch, probabilities)
        if best_weights is None or sign * value > sign * best.best_value:
            best.best_epoch, best.best_value = epoch, value
            best_weights = model.get_weights()
        elif epoch - best.best_epoch >= patience:
            log.debug("early stop at epoch %d (best %d)", epoch, best.best_epoch)
            break
    model.set_weights(best_weights)
    return best
