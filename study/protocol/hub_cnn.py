"""KerasHub's CNN backbones (ResNet, DenseNet, EfficientNet) as block maps read off their config, without TensorFlow.

KerasHub names the layers of these functional models after their stage and unit, whatever the preset, so the block
map names them directly: block 0 is the stem, then one block per stage (ResNet's stacks, DenseNet's dense blocks with
the transition after them, EfficientNet's stages); the last stage closes with what follows it up to the output
(ResNetV2's post-activation, DenseNet's final norm, EfficientNet's 1 x 1 top convolution). Their input may be any
size from their total stride up; a head pools the global average of the last feature map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from study.protocol.backbone_entry import Block


@dataclass(frozen=True)
class CnnConfig:
    """The part of a CNN preset's config the registry entry is derived from."""

    family: str
    block_map: tuple[Block, ...]
    stride: int  # the downsampling from input to the last feature map
    multiply_adds: float  # per input pixel, up to a factor common to the family
    preprocessing: str

    def blocks(self) -> tuple[Block, ...]:
        return self.block_map

    def min_size(self) -> int:
        """The total stride: every stage keeps at least one pixel."""
        return self.stride

    def work(self) -> float:
        return self.multiply_adds


def cnn_config(family: str, arguments: dict[str, Any], preprocessing: str) -> CnnConfig:
    """The block map, stride and work of a KerasHub CNN backbone's constructor arguments (its config.json)."""
    stem, stages, stride, work = _READERS[family](arguments)
    blocks = (Block("stem", stem), *(Block(f"stage{i + 1}", last) for i, last in enumerate(stages)))
    return CnnConfig(family, blocks, stride, work, preprocessing)


def _resnet(a: dict[str, Any]) -> tuple[str, list[str], int, float]:
    stages = [f"stack{i}_block{n - 1}_out" for i, n in enumerate(a["stackwise_num_blocks"])]
    if a.get("use_pre_activation"):
        stages[-1] = "post_relu"
    stride, work = 4, 0.0  # the stride-2 stem convolution and max pooling
    for blocks, filters, step in zip(a["stackwise_num_blocks"], a["stackwise_num_filters"],
                                     a["stackwise_num_strides"]):
        stride *= step
        work += blocks * filters**2 / stride**2
    return "pool1_pool", stages, stride, work


def _densenet(a: dict[str, Any]) -> tuple[str, list[str], int, float]:
    repeats, growth = a["stackwise_num_repeats"], a.get("growth_rate", 32)
    stages = [f"transition{i + 1}_pool" for i in range(len(repeats) - 1)] + ["relu"]
    channels, stride, work = 64.0, 4, 0.0
    for index, count in enumerate(repeats):
        if index:  # the transition before this dense block halves the size
            stride *= 2
        for _ in range(count):  # 1 x 1 to 4 x growth, 3 x 3 to growth, concatenated
            work += (channels * 4 * growth + 9 * 4 * growth * growth) / stride**2
            channels += growth
        channels *= a.get("compression_ratio", 0.5)
    return "pool1", stages, stride, work


def _efficientnet(a: dict[str, Any]) -> tuple[str, list[str], int, float]:
    stages, stride, work = [], 2, 0.0  # the stride-2 stem convolution
    for i, (count, step, kind) in enumerate(zip(a["stackwise_num_repeats"], a["stackwise_strides"],
                                                a["stackwise_block_types"])):
        repeats = math.ceil(a["stackwise_depth_coefficients"][i] * count)
        width = a["stackwise_output_filters"][i] * a["stackwise_width_coefficients"][i]
        stride *= step
        work += repeats * a["stackwise_expansion_ratios"][i] * width**2 / stride**2
        name = f"block{i + 1}{chr(ord('a') + repeats - 1)}_"
        stages.append(name + _mbconv_end(a, i, repeats) if kind == "v1" else name)  # other kinds are one layer
    stages[-1] = "top_activation"
    return "stem_activation", stages, stride, work


def _mbconv_end(a: dict[str, Any], stage: int, repeats: int) -> str:
    """The last layer of a stage's last inverted-residual block: the residual sum where its input and output
    agree, else the projection."""
    same_shape = repeats > 1 or (a["stackwise_strides"][stage] == 1 and
                                 a["stackwise_input_filters"][stage] == a["stackwise_output_filters"][stage])
    if same_shape:
        return "add"
    return "projection_activation" if a.get("projection_activation") else "project_bn"


_READERS = {"resnet": _resnet, "densenet": _densenet, "efficientnet": _efficientnet}

# Presets known by name without the network: their constructor arguments as keras_hub 0.32 converts the timm models
# they come from (keras_hub/src/utils/timm/convert_*.py). Verified by building each: the parameter counts equal those
# of keras_hub's *_presets.py (for EfficientNet, timm's count: the trainable parameters and a 1000-class classifier).
# Preprocessing: timm's ImageNet mean and deviation ("torch").
_RESNET = {"input_conv_filters": [64], "input_conv_kernel_sizes": [7], "stackwise_num_filters": [64, 128, 256, 512],
           "stackwise_num_strides": [1, 2, 2, 2], "use_pre_activation": False}
_EFFICIENTNET = {"stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3], "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
                 "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
                 "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
                 "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6], "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
                 "stackwise_block_types": ["v1"] * 7, "stackwise_squeeze_and_excite_ratios": [0.25] * 7,
                 "min_depth": None, "include_stem_padding": True, "use_depth_divisor_as_min_depth": True,
                 "cap_round_filter_decrease": True, "stem_conv_padding": "valid", "batch_norm_momentum": 0.9,
                 "batch_norm_epsilon": 1e-5, "dropout": 0, "projection_activation": None}


def _efficientnet_scaled(width: float, depth: float) -> dict[str, Any]:
    return {**_EFFICIENTNET, "stackwise_width_coefficients": [width] * 7, "stackwise_depth_coefficients": [depth] * 7}


KNOWN_CNN_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet_18_imagenet": ("resnet", {**_RESNET, "stackwise_num_blocks": [2, 2, 2, 2], "block_type": "basic_block"}),
    "resnet_50_imagenet": ("resnet", {**_RESNET, "stackwise_num_blocks": [3, 4, 6, 3],
                                      "block_type": "bottleneck_block"}),
    "resnet_101_imagenet": ("resnet", {**_RESNET, "stackwise_num_blocks": [3, 4, 23, 3],
                                       "block_type": "bottleneck_block"}),
    "resnet_152_imagenet": ("resnet", {**_RESNET, "stackwise_num_blocks": [3, 8, 36, 3],
                                       "block_type": "bottleneck_block"}),
    "densenet_121_imagenet": ("densenet", {"stackwise_num_repeats": [6, 12, 24, 16]}),
    "densenet_169_imagenet": ("densenet", {"stackwise_num_repeats": [6, 12, 32, 32]}),
    "densenet_201_imagenet": ("densenet", {"stackwise_num_repeats": [6, 12, 48, 32]}),
    "efficientnet_b0_ra_imagenet": ("efficientnet", _efficientnet_scaled(1.0, 1.0)),
    "efficientnet_b1_ft_imagenet": ("efficientnet", _efficientnet_scaled(1.0, 1.1)),
    "efficientnet_b2_ra_imagenet": ("efficientnet", _efficientnet_scaled(1.1, 1.2)),
}
