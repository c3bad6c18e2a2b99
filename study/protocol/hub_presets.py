"""KerasHub image encoders as registry entries: one family per architecture, one entry per preset.

A protocol names a KerasHub preset (`backbone: {name: dinov2_small, source: keras_hub}`) or a local preset folder
(what `save_to_preset` writes). Its registry entry is derived, without TensorFlow, from the family of its
architecture and from the preset's config: a folder's config.json and image_converter.json, those of a named preset
KerasHub has downloaded (kagglehub's cache), or else the table of known presets below. The block map groups the
transformer layers (or, for the CNN families, follows their stages: study/protocol/hub_cnn.py), the preprocessing is
the preset's image converter, the size is the preset's image size, and the cost is the family's measured one in
proportion to layers x width² (a CNN's: to its multiply-adds per pixel).

Block 0 is the patch embedding (with its position embedding); the transformer layers follow in up to
`LAYER_GROUPS` consecutive groups of near-equal size, and the final layer norm closes the last group. The
features a head pools are the class token where the family has one (ViT, DINOv2) and the mean of the patch
tokens where it has none (SigLIP).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from study.core.errors import StudyError
from study.protocol.backbone_entry import BackboneInfo, Block
from study.protocol.hub_cnn import KNOWN_CNN_PRESETS, CnnConfig, cnn_config

LAYER_GROUPS = 4
BUILDER = "study.training.models.hub.build_hub_backbone"


@dataclass(frozen=True)
class HubFamily:
    """What the harness knows of one KerasHub architecture, for every preset of it."""

    name: str
    classes: tuple[str, ...]  # KerasHub class names of its presets' config.json (the vision part first)
    pooling: str  # "cls" (token 0), "mean" (of the patch tokens) or "average" (of a CNN's feature map)
    resizable: bool  # any size: a multiple of the patch size (interpolated position embeddings), a CNN from its stride
    reference: str  # the preset whose training cost was measured
    cost: float  # its CPU training time per image relative to MobileNetV2, both at 224 px (backbone_cost.py)
    image_shape_argument: str = "image_shape"  # the constructor argument a preset's input shape is given as

    @property
    def convolutional(self) -> bool:
        return self.pooling == "average"


# Costs: `python benchmarks/backbone_cost.py --random-preset PRESET:DIR --size 224 --batch 8 --repeats 3` on the 2-core
# AMD EPYC, 1 thread, load average 2.5-2.9 (random weights of the reference preset's architecture). ViT and SigLIP base
# train alike (842 and 823 ms per image); their ratios differ by MobileNetV2's time in the same runs (121 and 83 ms).
# The CNNs: the same command with the three presets in one run, load average 2.4-2.9 (MobileNetV2 85 ms per image
# throughout; an earlier run beside a test run, MobileNetV2 92-206 ms, gave 3.00, 1.85 and 1.39).
HUB_FAMILIES: dict[str, HubFamily] = {family.name: family for family in (
    HubFamily("dinov2", ("DINOV2Backbone",), "cls", True, "dinov2_small", cost=4.07),
    HubFamily("vit", ("ViTBackbone",), "cls", False, "vit_base_patch16_224_imagenet", cost=6.93),
    HubFamily("siglip", ("SigLIPVisionEncoder", "SigLIPBackbone"), "mean", False, "siglip_base_patch16_224",
              cost=9.49),
    HubFamily("resnet", ("ResNetBackbone",), "average", True, "resnet_50_imagenet", cost=3.51),
    HubFamily("densenet", ("DenseNetBackbone",), "average", True, "densenet_121_imagenet", cost=3.11),
    HubFamily("efficientnet", ("EfficientNetBackbone",), "average", True, "efficientnet_b0_ra_imagenet",
              cost=1.56, image_shape_argument="input_shape"),
)}

# The names of the layers of the flat model study/training/models/hub.py builds, whatever the preset's names.
EMBEDDING, FINAL_NORM = "embedding", "final_norm"


def layer_name(index: int) -> str:
    """The flat model's name of the transformer layer `index` (0-based)."""
    return f"layer_{index}"


@dataclass(frozen=True)
class PresetConfig:
    """The part of a preset's config the registry entry is derived from."""

    family: str
    num_layers: int
    hidden_dim: int
    patch_size: int
    image_size: int
    preprocessing: str

    def work(self) -> int:
        """Layers x width squared: what a transformer's cost per token grows with."""
        return self.num_layers * self.hidden_dim**2

    def blocks(self) -> tuple[Block, ...]:
        return hub_blocks(self.num_layers)

    def min_size(self) -> int:
        return self.patch_size if HUB_FAMILIES[self.family].resizable else self.image_size


# Presets known by name without the network: depth, width and patch as the architectures are published (the image
# size of the DINOv2 presets, 518, is the one whose parameter count equals keras_hub 0.32's dinov2_presets.py:
# 22,582,656 for dinov2_small), preprocessing as the models' Hugging Face image processors normalise (DINOv2:
# ImageNet mean and std; ViT and SigLIP: mean and std 0.5). Where KerasHub has downloaded a named
# preset, its own config is read instead (preset_folder).
KNOWN_PRESETS: dict[str, PresetConfig | CnnConfig] = {
    "dinov2_small": PresetConfig("dinov2", 12, 384, 14, 518, "torch"),
    "dinov2_base": PresetConfig("dinov2", 12, 768, 14, 518, "torch"),
    "vit_base_patch16_224_imagenet": PresetConfig("vit", 12, 768, 16, 224, "tf"),
    "siglip_base_patch16_224": PresetConfig("siglip", 12, 768, 16, 224, "tf"),
    **{name: cnn_config(family, arguments, "torch") for name, (family, arguments) in KNOWN_CNN_PRESETS.items()},
}

# The preprocessing modes as the affine maps x * scale + offset of 0..255 input, per RGB channel.
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
AFFINE_MODES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "tf": ((1 / 127.5,) * 3, (-1.0,) * 3),
    "torch": (tuple(1 / (255 * s) for s in _IMAGENET_STD), tuple(-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD))),
    "unit": ((1 / 255,) * 3, (0.0,) * 3),
    "none": ((1.0,) * 3, (0.0,) * 3),
}


def is_local_preset(name: str) -> bool:
    return (Path(name).expanduser() / "config.json").is_file()


def is_hub_preset(name: str) -> bool:
    """Whether a backbone name is a KerasHub preset the harness can derive an entry for."""
    return name in KNOWN_PRESETS or is_local_preset(name) or downloaded_preset(name) is not None


def hub_backbone_info(name: str) -> BackboneInfo:
    """The registry entry of a KerasHub preset (by name, or a local preset folder)."""
    return _hub_backbone_info(name, preset_folder(name))


@lru_cache(maxsize=None)
def _hub_backbone_info(name: str, folder: Path | None) -> BackboneInfo:
    config = preset_config(name)
    family = HUB_FAMILIES[config.family]
    return BackboneInfo(
        name=name,
        keras_class=None,
        preprocessing=config.preprocessing,
        min_size=config.min_size(),
        blocks=config.blocks(),
        cost=family.cost * config.work() / KNOWN_PRESETS[family.reference].work(),
        builder=BUILDER,
        source="keras_hub",
        pooling=family.pooling,
    )


def hub_blocks(num_layers: int) -> tuple[Block, ...]:
    """Block 0 the patch embedding, then the layers in up to LAYER_GROUPS groups, the final norm in the last."""
    groups = min(LAYER_GROUPS, num_layers)
    bounds = [round(num_layers * g / groups) for g in range(groups + 1)]
    blocks = [Block("embed", EMBEDDING)]
    for first, end in zip(bounds, bounds[1:]):
        name = f"layer{first + 1}" if end - first == 1 else f"layers{first + 1}_{end}"
        blocks.append(Block(name, FINAL_NORM if end == num_layers else layer_name(end - 1)))
    return tuple(blocks)


def kagglehub_cache() -> Path:
    """Where kagglehub keeps downloaded presets: $KAGGLEHUB_CACHE, or ~/.cache/kagglehub."""
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path("~", ".cache", "kagglehub")).expanduser()


def downloaded_preset(name: str) -> Path | None:
    """The folder of a named preset KerasHub has downloaded (models/keras/<model>/keras/<preset>/<version>), its
    newest version; None where it has none."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        return None
    folders = [path.parent for path in kagglehub_cache().glob(f"models/keras/*/keras/{name}/*/config.json")
               if path.parent.name.isdigit()]
    return max(folders, key=lambda folder: int(folder.name), default=None)


def preset_folder(name: str) -> Path | None:
    """The folder a preset's config is read from: the local preset, or the named preset's download."""
    return Path(name).expanduser() if is_local_preset(name) else downloaded_preset(name)


def preset_config(name: str) -> PresetConfig | CnnConfig:
    """The family, block map, sizes and preprocessing of a preset, read without TensorFlow: from its folder, its
    download, or the known presets."""
    folder = preset_folder(name)
    if folder is not None:
        return _folder_config(folder, name)
    if name in KNOWN_PRESETS:
        return KNOWN_PRESETS[name]
    raise StudyError(
        f"KerasHub preset {name!r} is neither a known preset ({', '.join(sorted(KNOWN_PRESETS))}), one downloaded to "
        f"{kagglehub_cache()}, nor a folder with a config.json (what save_to_preset writes)"
    )


def _folder_config(folder: Path, name: str) -> PresetConfig | CnnConfig:
    config = json.loads((folder / "config.json").read_text())
    class_name = config.get("class_name", "")
    family = next((f for f in HUB_FAMILIES.values() if class_name in f.classes), None)
    if family is None:
        known = ", ".join(c for f in HUB_FAMILIES.values() for c in f.classes)
        raise StudyError(f"KerasHub preset {name}: its class {class_name!r} is none of the supported ({known})")
    arguments = config["config"]
    preprocessing = _converter_mode(folder, name) or _family_mode(family)
    if family.convolutional:
        return cnn_config(family.name, arguments, preprocessing)
    if class_name == "SigLIPBackbone":
        arguments = arguments["vision_encoder"]["config"]
    patch = arguments["patch_size"]
    return PresetConfig(family.name, int(arguments["num_layers"]), int(arguments["hidden_dim"]),
                        int(patch[0] if isinstance(patch, list) else patch), int(arguments["image_shape"][0]),
                        preprocessing)


def _family_mode(family: HubFamily) -> str:
    """The preprocessing of a family's published presets, for a folder without an image converter."""
    return next(config.preprocessing for config in KNOWN_PRESETS.values() if config.family == family.name)


def _converter_mode(folder: Path, name: str) -> str | None:
    """The preprocessing mode equal to the folder's image converter (x * scale + offset), if it has one."""
    path = folder / "image_converter.json"
    if not path.is_file():
        return None
    converter = json.loads(path.read_text())["config"]
    scale, offset = _per_channel(converter.get("scale"), 1.0), _per_channel(converter.get("offset"), 0.0)
    for mode, (mode_scale, mode_offset) in AFFINE_MODES.items():
        if _close(scale, mode_scale) and _close(offset, mode_offset):
            return mode
    raise StudyError(f"KerasHub preset {name}: its image converter (scale {scale}, offset {offset}) is none of the "
                     f"preprocessing modes {', '.join(AFFINE_MODES)}")


def _per_channel(value: float | list[float] | None, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * 3
    return tuple(float(v) for v in value) if isinstance(value, list) else (float(value),) * 3


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for x, y in zip(a, b))
