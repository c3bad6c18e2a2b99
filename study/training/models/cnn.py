"""The built-in cnn: a small conv-batchnorm-relu network for from-scratch baselines (registered in
study/protocol/blocks.py). Keras is imported inside the functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from study.core.errors import StudyError
from study.protocol.blocks import CNN_BLOCKS

if TYPE_CHECKING:
    import keras


def build_cnn(weights: str, size: int, width: int) -> keras.Model:
    """A stem and CNN_BLOCKS conv-bn-relu-maxpool stages doubling channels from `width`."""
    import keras

    if weights != "none":
        raise StudyError(f"the cnn backbone trains from scratch: weights must be none, got {weights!r}")
    inputs = keras.Input((size, size, 3), name="image")
    x = _conv_bn_relu(inputs, width, "stem")
    for i in range(1, CNN_BLOCKS + 1):
        x = _conv_bn_relu(x, width * 2 ** (i - 1), f"block{i}")
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name=f"cnn_w{width}")


def _conv_bn_relu(x, filters: int, prefix: str):
    import keras

    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(name=f"{prefix}_relu")(x)
