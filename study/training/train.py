"""Fit one model with per-group learning rates and early stopping on the validation split; predict."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from study.core.errors import StudyError
from study.core.vocabulary import higher_is_better
from study.plan.settings import EarlyStopping, TrainSettings
from study.training.metrics import classification_metrics
from study.training.models.arm_network import ArmModel

log = logging.getLogger(__name__)

PREDICT_BATCH = 256

EpochHook = Callable[[int, np.ndarray], None]


class TrainingFailed(StudyError):
    """Training could not go on (e.g. the loss became NaN); the cell is stored as failed."""


@dataclass
class FitResult:
    epochs: int  # epochs run
    best_epoch: int  # 1-based epoch whose weights were kept
    best_value: float  # the monitored validation value at best_epoch
    steps_per_epoch: int = 0
    steps: int = 0  # optimisation steps run
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, validation metrics, rates
    precise_bn: bool = False  # trained batch-norm statistics recomputed on the training subset after the fit


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights: balanced (n / (k * n_c)) or all ones."""
    if mode == "none":
        return np.ones(n_classes, dtype="float32")
    counts = np.bincount(labels, minlength=n_classes).astype("float64")
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype("float32")


def steps_per_epoch(n_train: int, train: TrainSettings) -> int:
    """Optimisation steps of one epoch: one pass over the subset, or more when that would leave the whole run
    below train.min_steps (a subset of a few dozen images takes several passes per epoch, so that every cell gets
    at least min_steps updates if it trains all its epochs, as BiT's schedule does by dataset size)."""
    one_pass = math.ceil(n_train / train.batch_size)
    return max(one_pass, math.ceil(train.min_steps / train.epochs))


def epoch_batches(rng: np.random.Generator, n_train: int, batch: int, steps: int) -> list[np.ndarray]:
    """The index batches of one epoch: whole passes over the subset, each a fresh permutation cut into batches,
    until `steps` batches are drawn."""
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(n_train)
        batches.extend(order[start : start + batch] for start in range(0, n_train, batch))
    return batches[:steps]


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

    def __init__(self, arm_model: ArmModel, train: TrainSettings):
        self.arm_model = arm_model
        self.train = train
        self.optimizers = [
            (variables, _optimizer(train.optimizer, 1e-3, train.weight_decay))
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

    def learning_rates(self) -> dict[str, float]:
        """The current rate of each variable group: backbone, hidden head layers, output layer."""
        names = ("lr_backbone", "lr_head", "lr_output")
        return {name: float(optimizer.learning_rate.numpy()) for name, (_, optimizer) in zip(names, self.optimizers)}

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
    weight_of_class = class_weights(y_train, n_classes, train.class_weight)
    rng = np.random.default_rng(seed)
    stopping = train.early_stopping or EarlyStopping(monitor="val_loss", patience=train.epochs + 1)
    monitor, patience = stopping.monitor, stopping.patience
    sign = 1.0 if higher_is_better(monitor) else -1.0
    steps = steps_per_epoch(len(x_train), train)
    best = FitResult(epochs=0, best_epoch=0, best_value=-math.inf, steps_per_epoch=steps)
    best_weights = None
    rates = trainer.learning_rates()
    for epoch in range(1, train.epochs + 1):
        losses = []
        for index in epoch_batches(rng, len(x_train), train.batch_size, steps):
            labels = y_train[index]
            losses.append(float(trainer.step(x_train[index], labels.astype("int32"), weight_of_class[labels])))
        best.steps += len(losses)
        mean_loss = float(np.mean(losses))
        if not math.isfinite(mean_loss):
            raise TrainingFailed(f"the training loss became {mean_loss} in epoch {epoch}; lower the learning rate")
        probabilities = trainer.predict(x_val)
        value = monitored_value(monitor, y_val, probabilities)
        best.history.append({"epoch": epoch, "loss": mean_loss, **validation_curve(y_val, probabilities), **rates})
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
    best.precise_bn = recompute_batchnorm_statistics(model, x_train, train.batch_size)
    return best


def validation_curve(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The validation values kept per epoch in a cell's history."""
    values = classification_metrics(labels, probabilities)
    return {"val_auc": values["auc"], "val_loss": values["log_loss"], "val_accuracy": values["accuracy"]}


def trained_batchnorm_layers(model) -> list:
    """The BatchNormalization layers of the model that train (scratch networks, or `batchnorm: train`)."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(trained_batchnorm_layers(layer))
    return found


def recompute_batchnorm_statistics(model, inputs: np.ndarray, batch: int) -> bool:
    """Set the moving statistics of every trained batch-norm layer to the average of its batch statistics over the
    training inputs under the final weights ("precise BN", Wu & Johnson 2021), so that evaluation uses statistics
    that match the kept weights rather than an exponential average of earlier ones. False when none trains.

    A batch-norm layer called in training mode with momentum 0 stores its batch's statistics as its moving ones;
    the batches' values are averaged, weighted by batch size. Only the statistics change, never a weight.
    """
    layers = trained_batchnorm_layers(model)
    if not layers:
        return False
    momenta = [layer.momentum for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for start in range(0, len(inputs), batch):
            part = inputs[start : start + batch]
            model(part, training=True)
            for (mean, variance), layer in zip(sums, layers):
                mean += len(part) * layer.moving_mean.numpy().astype("float64")
                variance += len(part) * layer.moving_variance.numpy().astype("float64")
        for (mean, variance), layer in zip(sums, layers):
            layer.moving_mean.assign((mean / len(inputs)).astype("float32"))
            layer.moving_variance.assign((variance / len(inputs)).astype("float32"))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return True
