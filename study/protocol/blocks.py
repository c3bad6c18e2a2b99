"""The backbone registry: one entry per backbone holds everything the harness knows of it.

An entry names the backbone, how it is built (a keras.applications class, or the dotted path of a builder function),
how its input is scaled, its smallest input size, its block map and its cost per image relative to MobileNetV2.
Adding a backbone is one `register(...)` call below: the protocol's choices (`backbone.name`), the cost estimate of
`study plan` (`study/runner/cost.py`) and the network the workers build (`study/training/models/backbones.py`) all
read `BACKBONES`.

The registry lives in the protocol layer, the lowest layer that all three of its readers may import, and so it is
pure data: no TensorFlow. A builder is named by its dotted path and imported only when a network is built.

Block 0 is the stem; `at: k` keeps blocks 0..k; `depth: d` trains the top d blocks of what is kept.
Each block is named by the last Keras layer it contains; a layer belongs to the first block whose last
layer does not come before it in the model's (topologically ordered) layer list.
"""

from __future__ import annotations

from study.core.errors import StudyError
from study.protocol.backbone_entry import BackboneInfo, Block
from study.protocol.hub_presets import hub_backbone_info, is_hub_preset


BACKBONES: dict[str, BackboneInfo] = {}


def register(info: BackboneInfo) -> BackboneInfo:
    """Add a backbone to BACKBONES under its name; built by exactly one of keras_class and builder."""
    if info.name in BACKBONES:
        raise ValueError(f"backbone {info.name!r} is registered twice")
    if (info.keras_class is None) == (info.builder is None):
        raise ValueError(f"backbone {info.name!r} needs exactly one of keras_class and builder")
    BACKBONES[info.name] = info
    return info


def backbone_info(name: str) -> BackboneInfo:
    """The registry entry of a backbone by its protocol name, or of a KerasHub preset (study/protocol/hub_presets.py)."""
    if name.lower() in BACKBONES:
        return BACKBONES[name.lower()]
    if is_hub_preset(name):
        return hub_backbone_info(name)
    raise StudyError(f"unknown backbone {name!r}; expected one of {', '.join(sorted(BACKBONES))}")


def _blocks(*pairs: tuple[str, str]) -> tuple[Block, ...]:
    return tuple(Block(name, last) for name, last in pairs)


# Costs: Keras' CPU inference times per step for keras.applications; InceptionV3's its training steps on the 2-core AMD
# EPYC, 1 thread, 96 px (`python benchmarks/backbone_cost.py inceptionv3 --repeats 15`: 2.00, 1.98 and 1.89 in three
# runs at load averages 3.1 to 5.5; inference steps 2.3 to 2.5); the cnn's from the transfusion cells (width 16: 0.59,
# width 32: 1.26 times MobileNetV2 from scratch), in proportion to width.
register(BackboneInfo(
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
    cost=1.0,
))
register(BackboneInfo(
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
    cost=0.87,
))
register(BackboneInfo(
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
    cost=2.25,
))
register(BackboneInfo(  # no stem: block 0 is VGG's first conv block
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
    cost=2.68,
))
register(BackboneInfo(
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
    cost=2.98,
))
register(BackboneInfo(
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
    cost=1.78,
))
register(BackboneInfo(  # no stem block: Keras names none of the stem's layers (their automatic names count up
    "inceptionv3",      # across the models of a process), so block 0 is the stem with the 35 x 35 modules
    "InceptionV3",
    "tf",
    75,
    _blocks(
        ("stem_mixed0_2", "mixed2"),
        ("mixed3", "mixed3"),  # grid reduction (to 17 x 17 at 299 px)
        ("mixed4_7", "mixed7"),
        ("mixed8", "mixed8"),  # grid reduction (to 8 x 8 at 299 px)
        ("mixed9_10", "mixed10"),
    ),
    cost=2.0,
))

register(BackboneInfo(  # no stem block, as for InceptionV3: block 0 is the unnamed stem with module mixed_5b
    "inceptionresnetv2",
    "InceptionResNetV2",
    "tf",
    75,
    _blocks(
        ("stem_mixed_5b", "mixed_5b"),
        ("block35", "block35_10_ac"),  # the 10 residual Inception-A units (35 x 35 at 299 px)
        ("mixed_6a", "mixed_6a"),  # grid reduction (to 17 x 17 at 299 px)
        ("block17", "block17_20_ac"),  # the 20 residual Inception-B units
        ("mixed_7a", "mixed_7a"),  # grid reduction (to 8 x 8 at 299 px)
        ("block8_conv_7b", "conv_7b_ac"),  # the 10 residual Inception-C units and the final 1 x 1 conv
    ),
    # training steps, 2-core AMD EPYC, 1 thread, 96 px (`python benchmarks/backbone_cost.py inceptionresnetv2`): 4.45
    # and 4.24 in two runs at load averages 1.3 to 2.7; inference steps 5.8 and 5.6
    cost=4.3,
))

CNN_BLOCKS = 4  # conv-bn-relu stages of the built-in cnn after its stem
register(BackboneInfo(
    "cnn",
    None,
    "unit",
    16,
    _blocks(("stem", "stem_relu"), *((f"block{i}", f"block{i}_pool") for i in range(1, CNN_BLOCKS + 1))),
    cost=1.25,
    builder="study.training.models.cnn.build_cnn",
    width=32,
))
