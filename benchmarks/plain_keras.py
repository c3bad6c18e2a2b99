"""The reference a reviewer would write: per cell, build a fresh keras.applications model and train it with a plain
Keras loop that follows the harness's recipe (study/training/train.py) step for step.

Per cell, the same as the harness: the training subset and splits, the backbone's preprocess_input mode, the cut and
the trained blocks by the block map (study/protocol/blocks.py), pretrained batch norm frozen (`layer.trainable =
False`), trained batch norm (from scratch) with momentum 0.9 and its statistics recomputed on the training subset
after the fit ("precise BN"), one optimizer per learning-rate group (backbone, hidden head layers, output layer),
at least train.min_steps steps (passes of fresh permutations, cut to the steps of an epoch), balanced class
weights (loss = weighted mean over the batch), early stopping on validation AUC with the best epoch's weights
restored. Different: no feature cache and no model reuse; every cell builds, traces and trains its own model, one
cell at a time on every core.
Usage: python benchmarks/plain_keras.py PROTOCOL OUT.parquet [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from study.data.sources import resolve_data_dir, source_fingerprint
from study.plan.cells import plan_cells
from study.protocol.blocks import backbone_info
from study.protocol.schema import load_protocol
from study.training.caches import load_for
from study.training.context import WorkerContext
from study.training.subsets import cell_indices

TRAINED_BN_MOMENTUM = 0.9  # the harness's momentum for batch norm that trains
PREDICT_BATCH = 256


# ------------------------------------------------------------------------------------------------- data
def preprocess(images: np.ndarray, mode: str) -> np.ndarray:
    """uint8 grey or RGB images as float32 RGB, scaled the way keras.applications expects for `mode`."""
    import keras

    x = images.astype("float32")
    x = x[..., None] if x.ndim == 3 else x
    x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    if mode in {"tf", "caffe", "torch"}:
        return keras.applications.imagenet_utils.preprocess_input(x, mode=mode)
    return x / 255.0 if mode == "unit" else x


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Balanced weights n / (k * n_c) over the classes present, or ones."""
    counts = np.bincount(labels, minlength=n_classes)
    if mode == "none":
        return np.ones(n_classes, "float32")
    present = counts > 0
    return np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0).astype("float32")


def epoch_order(rng: np.random.Generator, n: int, batch: int, steps: int) -> list[np.ndarray]:
    """`steps` batches of indices: whole passes over n items, each a fresh permutation, the last pass cut short."""
    batches = []
    while len(batches) < steps:
        order = rng.permutation(n)
        batches += [order[i : i + batch] for i in range(0, n, batch)]
    return batches[:steps]


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC: of the positive class with 2 classes, else macro one-vs-rest."""
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=range(probabilities.shape[1])))


# ------------------------------------------------------------------------------------------------ model
def block_of_layer(base, blocks) -> dict[str, int]:
    """Each layer's block: the first block whose last layer is not before it (-1 for the input)."""
    position = {layer.name: i for i, layer in enumerate(base.layers)}
    ends = [position[block.last_layer] for block in blocks]
    return {layer.name: (-1 if i == 0 else next(b for b, end in enumerate(ends) if end >= i))
            for i, layer in enumerate(base.layers)}


def backbone(settings: dict):
    """The cut keras.applications backbone with its frozen blocks and batch norm set as the arm says."""
    import keras

    spec, arm, train = settings["backbone"], settings["arm"], settings["train"]
    info = backbone_info(spec["name"])
    if info.keras_class is None or spec["weights"] not in {"imagenet", "none"}:
        raise SystemExit("plain_keras covers keras.applications backbones with weights imagenet or none")
    size = settings["dataset"]["size"]
    weights = None if spec["weights"] == "none" else "imagenet"
    constructor = getattr(keras.applications, info.keras_class)
    base = constructor(include_top=False, weights=weights, input_shape=(size, size, 3))
    block = block_of_layer(base, info.blocks)
    kept = len(info.blocks) if arm["truncate_at"] is None else arm["truncate_at"] + 1
    if arm["truncate_at"] is not None:
        base = keras.Model(base.input, base.get_layer(info.blocks[arm["truncate_at"]].last_layer).output)
    trained = kept if arm["depth"] == "all" else min(int(arm["depth"]), kept)
    freeze_bn = trained == 0 or (weights is not None and train["batchnorm"] == "frozen")
    mark_trainable(base, block, kept - trained, freeze_bn)
    return base


def mark_trainable(base, block: dict[str, int], first_trained: int, freeze_bn: bool) -> None:
    """Layers from block first_trained up train; batch norm trains there too (momentum 0.9) unless frozen."""
    import keras

    for layer in base.layers:
        layer.trainable = block[layer.name] >= first_trained
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = layer.trainable and not freeze_bn
            layer.momentum = TRAINED_BN_MOMENTUM if layer.trainable else layer.momentum


def build(settings: dict, n_classes: int):
    """The arm's model (backbone, global average pooling, the head) and its (variables, rate) groups."""
    import keras

    arm, size = settings["arm"], settings["dataset"]["size"]
    base = backbone(settings)
    inputs = keras.Input((size, size, 3))
    x = inputs
    if settings["train"]["augment"]:
        x = keras.layers.RandomTranslation(0.05, 0.05)(keras.layers.RandomFlip("horizontal")(x))
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    hidden = []
    if arm["head"]["kind"] == "mlp":
        for units in arm["head"]["units"]:
            hidden.append(keras.layers.Dense(units, activation="relu"))
            x = keras.layers.Dropout(arm["head"]["dropout"])(hidden[-1](x))
    output = keras.layers.Dense(n_classes, activation="softmax")
    model = keras.Model(inputs, output(x))
    groups = [
        (base.trainable_variables, arm["lr_backbone"]),
        ([v for layer in hidden for v in layer.trainable_variables], arm["lr_head"]),
        (output.trainable_variables, arm.get("lr_output") or arm["lr_head"]),
    ]
    return model, [(variables, rate) for variables, rate in groups if variables]


def optimizer(train: dict, rate: float):
    """A fresh optimizer of the protocol's kind at `rate`."""
    import keras

    decay = train["weight_decay"] or None
    if train["optimizer"] == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, weight_decay=decay)
    return keras.optimizers.AdamW(rate, weight_decay=decay) if decay else keras.optimizers.Adam(rate)


def train_step(model, groups, train: dict):
    """A traced step: weighted-mean cross-entropy, each variable group updated by its own optimizer."""
    import keras
    import tensorflow as tf

    optimizers = [(variables, optimizer(train, rate)) for variables, rate in groups]
    for variables, opt in optimizers:
        opt.build(variables)
    trainable = [v for variables, _ in optimizers for v in variables]

    shapes = [tf.TensorSpec([None, *model.input_shape[1:]]), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None])]

    @tf.function(input_signature=shapes)  # one trace for full and short batches
    def step(x, y, w):
        with tf.GradientTape() as tape:
            losses = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
            loss = tf.reduce_sum(losses * w) / tf.reduce_sum(w) + sum(model.losses)
        gradients = tape.gradient(loss, trainable)
        start = 0
        for variables, opt in optimizers:
            opt.apply_gradients(zip(gradients[start : start + len(variables)], variables))
            start += len(variables)
        return loss

    return step


# ------------------------------------------------------------------------------------------------ train
def fit(model, groups, data: dict, train: dict, seed: int, n_classes: int) -> dict:
    """Train with early stopping on validation AUC, keep the best epoch's weights, then precise BN."""
    (x, y), (xv, yv) = data["train"], data["val"]
    step = train_step(model, groups, train)
    weight = class_weights(y, n_classes, train["class_weight"])
    steps = max(math.ceil(len(x) / train["batch_size"]), math.ceil(train["min_steps"] / train["epochs"]))
    patience = train["early_stopping"]["patience"]
    rng = np.random.default_rng(seed)
    best, best_epoch, best_weights, epoch = -math.inf, 0, None, 0
    for epoch in range(1, train["epochs"] + 1):
        for index in epoch_order(rng, len(x), train["batch_size"], steps):
            loss = step(x[index], y[index].astype("int32"), weight[y[index]])
        if not np.isfinite(float(loss)):
            raise RuntimeError(f"the loss became {float(loss)} in epoch {epoch}")
        value = auc(yv, model.predict(xv, batch_size=PREDICT_BATCH, verbose=0))
        if best_weights is None or value > best:
            best, best_epoch, best_weights = value, epoch, model.get_weights()
        elif epoch - best_epoch >= patience:
            break
    model.set_weights(best_weights)
    precise_batchnorm(model, x, train["batch_size"])
    return {"epochs": epoch, "best_epoch": best_epoch, "steps": epoch * steps}


def trained_batchnorm(model) -> list:
    """Every BatchNormalization layer that trains, nested models included."""
    import keras

    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers += trained_batchnorm(layer)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layers.append(layer)
    return layers


def precise_batchnorm(model, x: np.ndarray, batch: int) -> None:
    """Set each trained batch norm's moving statistics to the mean of its batch statistics over the training
    subset, in batches, under the kept weights (momentum 0 stores one batch's statistics)."""
    layers = trained_batchnorm(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    totals = [[0.0, 0.0] for _ in layers]
    for layer in layers:
        layer.momentum = 0.0
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        model(part, training=True)
        for total, layer in zip(totals, layers):
            total[0] += len(part) * layer.moving_mean.numpy().astype("float64")
            total[1] += len(part) * layer.moving_variance.numpy().astype("float64")
    for (mean, variance), layer, momentum in zip(totals, layers, momenta):
        layer.moving_mean.assign((mean / len(x)).astype("float32"))
        layer.moving_variance.assign((variance / len(x)).astype("float32"))
        layer.momentum = momentum


def run_cell(cell, context: WorkerContext, images: np.ndarray, n_classes: int) -> dict:
    """Build a fresh model for the cell, fit it, score it on the test split."""
    import keras

    clock = time.perf_counter()
    dataset = load_for(context, cell.seed)
    parts = cell_indices(dataset, cell.fraction, cell.seed)
    data = {part: (images[index], dataset.labels[index]) for part, index in parts.items()}
    keras.utils.set_random_seed(cell.seed)
    settings = cell.settings.as_dict()  # the plain record, read independently of the harness's code
    model, groups = build(settings, n_classes)
    result = fit(model, groups, data, settings["train"], cell.seed, n_classes)
    seconds = time.perf_counter() - clock
    x_test, y_test = data["test"]
    test_auc = auc(y_test, model.predict(x_test, batch_size=PREDICT_BATCH, verbose=0))
    return {"arm": cell.arm.label, "strategy": cell.arm.strategy, "fraction": cell.fraction, "seed": cell.seed,
            "seconds": seconds, "auc": test_auc, **result}


def quiet() -> None:
    """Hide TensorFlow's retracing notes (every cell traces its own model) and Keras' 224 px weights note."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=r".*will be loaded as the default", category=UserWarning)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol")
    parser.add_argument("out")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    quiet()
    protocol = load_protocol(args.protocol)
    if protocol.train.early_stopping is None or protocol.train.early_stopping.monitor != "val_auc":
        raise SystemExit("plain_keras follows early stopping on val_auc only")
    data_dir = resolve_data_dir(args.data_dir)
    cells = plan_cells(protocol, source_fingerprint(protocol.dataset, data_dir))
    context = WorkerContext(protocol.dataset.model_dump(), str(data_dir) if data_dir else None, None, threads=1)
    dataset = load_for(context, None)
    images = preprocess(dataset.images, backbone_info(protocol.backbone.name).preprocessing)
    rows = []
    for cell in cells:
        rows.append(run_cell(cell, context, images, len(dataset.class_names)))
        print(f"plain {cell.describe()}: {rows[-1]['seconds']:.1f} s, {rows[-1]['epochs']} epochs, "
              f"auc={rows[-1]['auc']:.3f}", flush=True)
    pd.DataFrame(rows).to_parquet(args.out)


if __name__ == "__main__":
    main()
