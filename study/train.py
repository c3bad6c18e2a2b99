"""Fit one model with per-group learning rates and early stopping on the validation split; predict."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from study.errors import StudyError
from study.metrics import classification_metrics
from study.models.strategies import ArmModel

log = logging.getLogger(__name__)

PREDICT_BATCH = 256
MINIMISED = {"val_loss"}


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


def _train_step(arm_model: ArmModel, train: dict[str, Any], lr_backbone: float, lr_head: float, size: int):
    """A traced step that applies each variable group's own optimizer; returns the batch loss."""
    import tensorflow as tf

    model = arm_model.model
    groups = [
        (variables, _optimizer(train["optimizer"], rate, train["weight_decay"]))
        for variables, rate in ((arm_model.backbone_variables, lr_backbone), (arm_model.head_variables, lr_head))
        if variables
    ]
    for variables, optimizer in groups:
        optimizer.build(variables)
    trainable = [variable for variables, _ in groups for variable in variables]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ]
    )
    def step(images, labels, weights):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
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

    return step


def predictor(model, size: int):
    """A traced inference function over batches of preprocessed images."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def forward(images):
        return model(images, training=False)

    def predict(images: np.ndarray) -> np.ndarray:
        parts = [forward(images[i : i + PREDICT_BATCH]).numpy() for i in range(0, len(images), PREDICT_BATCH)]
        probabilities = np.concatenate(parts).astype("float64")
        return probabilities / probabilities.sum(axis=1, keepdims=True)  # exact sums after float32 softmax

    return predict


def _monitored(name: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    values = classification_metrics(labels, probabilities)
    key = {"val_auc": "auc", "val_loss": "log_loss", "val_accuracy": "accuracy"}.get(name, name.removeprefix("val_"))
    value = values[key]
    return value if not math.isnan(value) else values["accuracy"]


def fit(
    arm_model: ArmModel,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    train: dict[str, Any],
    lr_backbone: float,
    lr_head: float,
    seed: int,
    n_classes: int,
) -> FitResult:
    """Train on data['train'], select the epoch by data['val'] (never test); the model keeps the best weights."""
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    size = x_train.shape[1]
    step = _train_step(arm_model, train, lr_backbone, lr_head, size)
    predict = predictor(arm_model.model, size)
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
            loss = float(step(x_train[index], labels.astype("int32"), weight_of_class[labels]))
            losses.append(loss)
        mean_loss = float(np.mean(losses))
        if not math.isfinite(mean_loss):
            raise TrainingFailed(f"the training loss became {mean_loss} in epoch {epoch}; lower the learning rate")
        value = _monitored(monitor, y_val, predict(x_val))
        best.history.append({"epoch": epoch, "loss": mean_loss, monitor: value})
        best.epochs = epoch
        if best_weights is None or sign * value > sign * best.best_value:
            best.best_epoch, best.best_value = epoch, value
            best_weights = arm_model.model.get_weights()
        elif epoch - best.best_epoch >= patience:
            log.debug("early stop at epoch %d (best %d)", epoch, best.best_epoch)
            break
    arm_model.model.set_weights(best_weights)
    return best
