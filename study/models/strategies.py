"""Build the network of one arm: backbone (cut, frozen or trainable by block) plus a new head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.models.backbones import build_backbone, layer_blocks, truncate
from study.models.blocks import backbone_info


TRAINED_BN_MOMENTUM = 0.9  # Keras' 0.99-0.999 leaves moving statistics near their start after a small-data run


@dataclass
class ArmModel:
    """A built model and its variables split into the two learning-rate groups."""

    model: Any  # keras.Model mapping preprocessed images to class probabilities
    backbone_variables: list
    head_variables: list
    blocks_kept: int
    blocks_trained: int


def build_arm_model(settings: dict[str, Any], n_classes: int) -> ArmModel:
    """The model of one cell's arm, with frozen blocks marked non-trainable."""
    import keras

    backbone, arm, train = settings["backbone"], settings["arm"], settings["train"]
    size = settings["dataset"]["size"]
    info = backbone_info(backbone["name"])
    base = build_backbone(backbone["name"], backbone["weights"], size, backbone.get("width"))
    block_of = dict(zip((layer.name for layer in base.layers), layer_blocks(base, info)))
    kept = len(info.blocks)
    if arm["truncate_at"] is not None:
        base = truncate(base, info, arm["truncate_at"])
        kept = arm["truncate_at"] + 1
    trained = kept if arm["depth"] == "all" else min(int(arm["depth"]), kept)
    first_trained = kept - trained
    for layer in base.layers:  # the input layer maps to block -1 and holds no weights
        layer.trainable = block_of.get(layer.name, -1) >= first_trained

    inputs = keras.Input((size, size, 3), name="image")
    features = inputs
    if train["augment"]:
        features = keras.layers.RandomFlip("horizontal", name="augment_flip")(features)
        features = keras.layers.RandomTranslation(0.05, 0.05, name="augment_shift")(features)
    pretrained = backbone["weights"] != "none"
    keep_bn_frozen = trained == 0 or (pretrained and train["batchnorm"] == "frozen")
    if keep_bn_frozen:
        features = base(features, training=False)
    else:
        _shorten_batchnorm_memory(base)
        features = base(features)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    head = arm["head"]
    if head["kind"] == "mlp":
        for index, units in enumerate(head["units"]):
            features = keras.layers.Dense(units, activation="relu", name=f"head_dense{index + 1}")(features)
            features = keras.layers.Dropout(head["dropout"], name=f"head_dropout{index + 1}")(features)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="head_out")(features)
    model = keras.Model(inputs, outputs, name=f"{backbone['name']}_{arm['strategy']}")
    backbone_ids = {id(variable) for variable in base.trainable_variables}
    return ArmModel(
        model=model,
        backbone_variables=list(base.trainable_variables),
        head_variables=[v for v in model.trainable_variables if id(v) not in backbone_ids],
        blocks_kept=kept,
        blocks_trained=trained,
    )


def _shorten_batchnorm_memory(base) -> None:
    """Let trained batch-norm statistics follow the data within a few dozen steps."""
    import keras

    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.momentum = TRAINED_BN_MOMENTUM
