"""What the harness knows of one backbone: its block map, how it is built and scaled, its smallest size and cost.

The entries of `study.protocol.blocks` (the registry) and of `study.protocol.hub_presets` (KerasHub presets) are
of this type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    name: str
    last_layer: str


@dataclass(frozen=True)
class BackboneInfo:
    name: str  # the protocol's backbone.name
    keras_class: str | None  # attribute of keras.applications; None where `builder` builds it
    # "tf", "caffe" or "torch" (keras.applications.imagenet_utils modes), "none" (0..255 kept: the
    # model rescales inside) or "unit" (x / 255, the built-in cnn)
    preprocessing: str
    min_size: int  # smallest input size Keras accepts with include_top=False (the cnn: 16, after 4 pools)
    blocks: tuple[Block, ...]
    cost: float  # CPU time per image relative to MobileNetV2 (see study/runner/cost.py)
    # "module.function" building the network as function(weights, size, width), for networks outside
    # keras.applications; only such a builder takes a `width` (channels of its first stage, `width` by default)
    builder: str | None = None
    width: int | None = None
    source: str = "keras"  # "keras", or "keras_hub": derived by hub_presets.py, built by hub.build_hub_backbone
    pooling: str = "average"  # the head's pooling: "average" of a feature map, "cls" or "mean" of tokens

    def block_names(self) -> list[str]:
        return [block.name for block in self.blocks]
