"""Block maps: the named stages of each backbone that `depth` and `at` count.

Pure data, no TensorFlow: `plan`, `validate` and the protocol checks read it without building a model.
Block 0 is the stem; `at: k` keeps blocks 0..k; `depth: d` trains the top d blocks of what is kept.
Each block is named by the last Keras layer it contains; a layer belongs to the first block whose last
layer does not come before it in the model's (topologically ordered) layer list.
"""

from __future__ import annotations

from dataclasses import dataclass

from study.core.errors import StudyError


@dataclass(frozen=True)
class Block:
    name: str
    last_layer: str


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    keras_class: str | None  # attribute of keras.applications; None for the built-in cnn
    # "tf", "caffe" or "torch" (keras.applications.imagenet_utils modes), "none" (0..255 kept: the
    # model rescales inside) or "unit" (x / 255, the built-in cnn)
    preprocessing: str
    min_size: int  # smallest input size Keras accepts with include_top=False (the cnn: 16, after 4 pools)
    blocks: tuple[Block, ...]

    def block_names(self) -> list[str]:
        return [block.name for block in self.blocks]


def _blocks(*pairs: tuple[str, str]) -> tuple[Block, ...]:
    return tuple(Block(name, last) for name, last in pairs)


CNN_BLOCKS = 4  # conv-bn-relu stages of the built-in cnn after its stem

BLOCK_MAPS: dict[str, BackboneInfo] = {
    "mobilenetv2": BackboneInfo(
        "mobilenetv2",
        "MobileNetV2",
        "tf",
        32,
        _blocks(
            ("stem", "Conv1_relu"),
            ("stage1", "expanded_conv_project_BN"),  # inverted-residual block 0 (Keras "expanded_conv")
            ("stage2", "block_2_add"),  # blocks 1-2; then 3-5, 6-9, 10-12, 13-15, 16
            ("stage3", "block_5_add"),
            ("stage4", "block_9_add"),
            ("stage5", "block_12_add"),
            ("stage6", "block_15_add"),
            ("stage7", "block_16_project_BN"),
            ("head_conv", "out_relu"),
        ),
    ),
    "mobilenet": BackboneInfo(
        "mobilenet",
        "MobileNet",
        "tf",
        32,
        _blocks(
            ("stem", "conv1_relu"),
            ("stage1", "conv_pw_1_relu"),  # depthwise-separable unit 1, at the stem's resolution
            ("stage2", "conv_pw_3_relu"),  # units 2-3; then 4-5, 6-11, 12-13, each starting at stride 2
            ("stage3", "conv_pw_5_relu"),
            ("stage4", "conv_pw_11_relu"),
            ("stage5", "conv_pw_13_relu"),
        ),
    ),
    "resnet50": BackboneInfo(
        "resnet50",
        "ResNet50",
        "caffe",
        32,
        _blocks(
            ("stem", "pool1_pool"),
            ("conv2", "conv2_block3_out"),
            ("conv3", "conv3_block4_out"),
            ("conv4", "conv4_block6_out"),
            ("conv5", "conv5_block3_out"),
        ),
    ),
    "vgg16": BackboneInfo(  # no stem: block 0 is VGG's first conv block
        "vgg16",
        "VGG16",
        "caffe",
        32,
        _blocks(
            ("block1", "block1_pool"),
            ("block2", "block2_pool"),
            ("block3", "block3_pool"),
            ("block4", "block4_pool"),
            ("block5", "block5_pool"),
        ),
    ),
    "densenet121": BackboneInfo(
        "densenet121",
        "DenseNet121",
        "torch",
        32,
        _blocks(
            ("stem", "pool1"),
            ("dense1", "pool2_pool"),  # dense block k and the transition (pool{k+1}_*) after it
            ("dense2", "pool3_pool"),
            ("dense3", "pool4_pool"),
            ("dense4", "relu"),  # the last dense block and the final batch norm and relu
        ),
    ),
    "efficientnetb0": BackboneInfo(
        "efficientnetb0",
        "EfficientNetB0",
        "none",
        32,
        _blocks(
            ("stem", "stem_activation"),
            ("stage1", "block1a_project_bn"),  # stage k is Keras' block{k}a, block{k}b, ...
            ("stage2", "block2b_add"),
            ("stage3", "block3b_add"),
            ("stage4", "block4c_add"),
            ("stage5", "block5c_add"),
            ("stage6", "block6d_add"),
            ("stage7", "block7a_project_bn"),
            ("head_conv", "top_activation"),
        ),
    ),
    "cnn": BackboneInfo(
        "cnn",
        None,
        "unit",
        16,
        _blocks(("stem", "stem_relu"), *((f"block{i}", f"block{i}_pool") for i in range(1, CNN_BLOCKS + 1))),
    ),
}


def backbone_info(name: str) -> BackboneInfo:
    """The block map of a backbone by its protocol name."""
    try:
        return BLOCK_MAPS[name.lower()]
    except KeyError:
        raise StudyError(f"unknown backbone {name!r}; expected one of {', '.join(sorted(BLOCK_MAPS))}") from None
