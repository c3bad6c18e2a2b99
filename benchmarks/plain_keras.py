"""The baseline a user following the Keras guides would write: per cell, build, compile and fit a fresh model.

Same cells, same training subsets, same epochs, early stopping on validation AUC with the best weights restored,
class weights, the protocol's batch-norm momentum for batch norm trained from scratch, and one learning rate per
model (Keras' compile takes one optimizer): the head rate where nothing pretrained trains, else the backbone rate;
give the protocol one rate for both to compare metrics. No feature cache, no model reuse.
Usage: python benchmarks/plain_keras.py PROTOCOL OUT.parquet [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from study.data.sources import resolve_data_dir, source_fingerprint
from study.plan.cells import plan_cells
from study.protocol.schema import load_protocol
from study.training.caches import load_for, preprocessed_images
from study.training.context import WorkerContext
from study.training.metrics import classification_metrics
from study.training.models.strategies import TRAINED_BN_MOMENTUM
from study.training.subsets import cell_indices
from study.training.train import class_weights


def plain_model(cell, n_classes: int):
    """keras.applications backbone, frozen/cut the usual Keras way, pooled, a Dense softmax head."""
    import keras

    settings = cell.settings
    size = settings["dataset"]["size"]
    backbone, arm = settings["backbone"], settings["arm"]
    from study.protocol.blocks import backbone_info
    from study.training.models.backbones import build_backbone, layer_blocks, truncate

    info = backbone_info(backbone["name"])
    base = build_backbone(backbone["name"], backbone["weights"], size, backbone.get("width"))
    blocks = dict(zip((layer.name for layer in base.layers), layer_blocks(base, info)))
    kept = len(info.blocks)
    if arm["truncate_at"] is not None:
        base, kept = truncate(base, info, arm["truncate_at"]), arm["truncate_at"] + 1
    trained = kept if arm["depth"] == "all" else int(arm["depth"])
    for layer in base.layers:
        layer.trainable = blocks.get(layer.name, -1) >= kept - trained
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable and backbone["weights"] == "none":
            layer.momentum = TRAINED_BN_MOMENTUM
    inputs = keras.Input((size, size, 3))
    x = base(inputs, training=False if backbone["weights"] != "none" else None)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rate = arm["lr_head"] if trained == 0 or backbone["weights"] == "none" else arm["lr_backbone"]
    model.compile(keras.optimizers.Adam(rate), "categorical_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc", num_thresholds=1000)])
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol")
    parser.add_argument("out")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    import keras

    protocol = load_protocol(args.protocol)
    data_dir = resolve_data_dir(args.data_dir)
    cells = plan_cells(protocol, source_fingerprint(protocol.dataset, data_dir))
    context = WorkerContext(protocol.dataset.model_dump(), str(data_dir) if data_dir else None, None, threads=os.cpu_count() or 1)
    images = preprocessed_images(context, protocol.backbone.name)
    n_classes = len(load_for(context, None).class_names)
    rows = []
    for cell in cells:
        clock = time.perf_counter()
        keras.utils.set_random_seed(cell.seed)
        dataset = load_for(context, cell.seed)
        parts = cell_indices(dataset, cell.fraction, cell.seed)
        (x, y), (xv, yv), (xt, yt) = ((images[i], dataset.labels[i]) for i in (parts["train"], parts["val"], parts["test"]))
        model = plain_model(cell, n_classes)
        train = cell.settings["train"]
        stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=train["early_stopping"]["patience"],
                                                 restore_best_weights=True)
        weights = class_weights(y, n_classes, train["class_weight"])
        one_hot = keras.utils.to_categorical
        model.fit(x, one_hot(y, n_classes), validation_data=(xv, one_hot(yv, n_classes)), epochs=train["epochs"], batch_size=train["batch_size"],
                  class_weight=dict(enumerate(weights)), callbacks=[stopping], verbose=0)
        scores = classification_metrics(yt, model.predict(xt, verbose=0).astype("float64"))
        rows.append({"arm": cell.arm.label, "strategy": cell.arm.strategy, "fraction": cell.fraction, "seed": cell.seed,
                     "seconds": time.perf_counter() - clock, **scores})
        print(f"plain {cell.describe()}: {rows[-1]['seconds']:.1f} s auc={scores['auc']:.3f}", flush=True)
    pd.DataFrame(rows).to_parquet(args.out)


if __name__ == "__main__":
    main()
