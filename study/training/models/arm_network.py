"""Build the network of one arm: backbone (cut, frozen or trainable by block) plus a new head.

When the arm's lower blocks stay frozen and there is no augmentation, the built model starts at the output of
the last frozen block (`input_block`), whose values come from the feature cache; otherwise it starts at the image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from study.plan.settings import CellSettings, HeadSettings
from study.protocol.blocks import backbone_info
from study.protocol.strategy_registry import blocks_kept, blocks_trained
from study.training.models.backbones import build_backbone, layer_blocks, truncate

TRAINED_BN_MOMENTUM = 0.9  # Keras' 0.99-0.999 leaves moving statistics near their start after a small-data run


@dataclass
class ArmModel:
    """A built model and its variables split into the two learning-rate groups."""

    model: Any  # keras.Model from images (input_block None) or from block input_block's output, to probabilities
    input_block: int | None
    backbone_variables: list
    head_variables: list  # every new layer on top of the backbone, the output layer included
    output_variables: list  # the output layer's kernel and bias
    blocks_kept: int
    blocks_trained: int
    total_params: int  # of the whole network, frozen blocks included
    random_state_before_head: tuple  # Python's random state when the head's layers were made (see models.fresh)

    def variable_groups(self) -> tuple[list, list, list]:
        """Trainable variables by learning-rate group: backbone, hidden head layers, output layer."""
        output_ids = {id(variable) for variable in self.output_variables}
        hidden = [variable for variable in self.head_variables if id(variable) not in output_ids]
        return self.backbone_variables, hidden, self.output_variables


def frozen_boundary(settings: CellSettings) -> int | None:
    """The last block that stays frozen when the model can start after it, else None."""
    info = backbone_info(settings.backbone.name)
    kept = blocks_kept(settings.arm.truncate_at, len(info.blocks))
    trained = blocks_trained(settings.arm.depth, kept)
    if trained == kept or settings.train.augment:
        return None
    return kept - trained - 1


def build_arm_model(settings: CellSettings, n_classes: int, start_after_frozen: bool = True) -> ArmModel:
    """The model of one cell's arm, with frozen blocks marked non-trainable."""
    import keras

    backbone, arm, train = settings.backbone, settings.arm, settings.train
    size = settings.dataset.size
    info = backbone_info(backbone.name)
    base = build_backbone(backbone.name, backbone.weights, size, backbone.width)
    block_of = dict(zip((layer.name for layer in base.layers), layer_blocks(base, info)))
    if arm.truncate_at is not None:
        base = truncate(base, info, arm.truncate_at)
    kept = blocks_kept(arm.truncate_at, len(info.blocks))
    trained = blocks_trained(arm.depth, kept)
    first_trained = kept - trained
    for layer in base.layers:  # the input layer maps to block -1 and holds no weights
        layer.trainable = block_of.get(layer.name, -1) >= first_trained

    keep_bn_frozen = trained == 0 or (backbone.pretrained and train.batchnorm == "frozen")
    if keep_bn_frozen:
        freeze_batchnorm(base)
    else:
        _shorten_batchnorm_memory(base)
    input_block = frozen_boundary(settings) if start_after_frozen else None
    if input_block is None:
        inputs = keras.Input((size, size, 3), name="image")
        features = _augment(inputs) if train.augment else inputs
        trunk = base
    else:
        boundary = base.get_layer(info.blocks[input_block].last_layer).output
        inputs = keras.Input(tuple(boundary.shape[1:]), name=f"block{input_block}_output")
        features = inputs
        trunk = keras.Model(boundary, base.output, name="trainable_blocks") if trained else None
    if trunk is not None:
        features = trunk(features)
    random_state_before_head = random.getstate()  # Keras draws each default initializer seed from `random`
    outputs = _head(features, arm.head, n_classes, info.pooling)
    network = base.name if info.source == "keras_hub" else backbone.name  # a preset's name may be a folder path
    model = keras.Model(inputs, outputs, name=f"{network}_{arm.strategy}")
    backbone_ids = {id(variable) for variable in base.trainable_variables}
    head_variables = [v for v in model.trainable_variables if id(v) not in backbone_ids]
    return ArmModel(
        model=model,
        input_block=input_block,
        backbone_variables=[v for v in model.trainable_variables if id(v) in backbone_ids],
        head_variables=head_variables,
        output_variables=list(model.get_layer("head_out").trainable_variables),
        blocks_kept=kept,
        blocks_trained=trained,
        total_params=int(base.count_params() + sum(math.prod(v.shape) for v in head_variables)),
        random_state_before_head=random_state_before_head,
    )


def build_head(settings: CellSettings, n_classes: int, feature_shape: tuple) -> Any:
    """The arm's head alone, as a model from the trunk's output (feature_shape) to probabilities."""
    import keras

    inputs = keras.Input(feature_shape, name="trunk_output")
    pooling = backbone_info(settings.backbone.name).pooling
    return keras.Model(inputs, _head(inputs, settings.arm.head, n_classes, pooling), name="head")


def _augment(images):
    import keras

    images = keras.layers.RandomFlip("horizontal", name="augment_flip")(images)
    return keras.layers.RandomTranslation(0.05, 0.05, name="augment_shift")(images)


def _head(features, head: HeadSettings, n_classes: int, pooling: str):
    import keras

    features = pool(features, pooling)
    if head.kind == "mlp":
        for index, units in enumerate(head.units):
            features = keras.layers.Dense(units, activation="relu", name=f"head_dense{index + 1}")(features)
            features = keras.layers.Dropout(head.dropout, name=f"head_dropout{index + 1}")(features)
    return keras.layers.Dense(n_classes, activation="softmax", name="head_out")(features)


def pool(features, pooling: str):
    """One vector per image (see pool_features): the mean of a feature map, or a token sequence's class token
    (cls) or mean (mean)."""
    import keras

    if pooling == "average":
        return keras.layers.GlobalAveragePooling2D(name="pool")(features)
    if pooling == "mean":
        return keras.layers.GlobalAveragePooling1D(name="pool")(features)
    tokens = features.shape[1]
    class_token = keras.layers.Cropping1D((0, tokens - 1), name="class_token")(features)
    return keras.layers.Flatten(name="pool")(class_token)


def freeze_batchnorm(base) -> None:
    """Keep every batch-norm layer in inference mode with its statistics, scale and offset fixed.

    In Keras 3 the outer call's `training=True` overrides a nested model's `training=False`; only a
    BatchNormalization layer whose `trainable` is False runs in inference mode whatever the call says.
    """
    import keras

    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _shorten_batchnorm_memory(base) -> None:
    """Let trained batch-norm statistics follow the data within a few dozen steps."""
    import keras

    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.momentum = TRAINED_BN_MOMENTUM
