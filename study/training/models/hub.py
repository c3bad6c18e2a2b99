"""KerasHub image encoders as flat Keras models whose layers are the registry entry's blocks.

A KerasHub backbone holds its transformer layers inside one encoder layer (or names them after the preset's model).
The harness rebuilds it as a functional model of copies of its layers, named by study/protocol/hub_presets.py:
images -> `embedding` (patch and position embedding) -> `layer_0`, `layer_1`, ... -> `final_norm`, whose output is
the token sequence (N x tokens x width). The block map, truncation, freezing and the feature cache then work as for
keras.applications. The attention-pooling head of a SigLIP encoder is left out. A CNN backbone (ResNet, DenseNet,
EfficientNet) names its layers itself, as study/protocol/hub_cnn.py reads them, and is used as KerasHub builds it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from study.core.errors import StudyError
from study.protocol.blocks import BackboneInfo
from study.protocol.hub_presets import (
    EMBEDDING,
    FINAL_NORM,
    HUB_FAMILIES,
    PresetConfig,
    is_local_preset,
    kagglehub_cache,
    layer_name,
    preset_config,
)

if TYPE_CHECKING:
    import keras

_LAYER_KWARGS = {"name", "trainable", "dtype"}  # what every Keras layer's constructor takes as keyword arguments


def build_hub_backbone(info: BackboneInfo, weights: str, size: int) -> keras.Model:
    """The preset's encoder on (size, size, 3) input, with its weights (`preset`) or random ones (`none`)."""
    import keras

    config = preset_config(info.name)
    family = HUB_FAMILIES[config.family]
    if not isinstance(config, PresetConfig):  # a CNN: any size from its min_size, its own layer names
        backbone = _from_preset(info.name, weights == "preset", {family.image_shape_argument: (size, size, 3)})
        return keras.Model(backbone.input, backbone.output, name=config.family)
    if family.resizable and size % config.patch_size:
        raise StudyError(f"{info.name} needs a size that is a multiple of its patch size {config.patch_size}, "
                         f"got size {size}")
    if not family.resizable and size != config.image_size:
        raise StudyError(f"{info.name} takes {config.image_size} px images only (its position embeddings are "
                         f"fixed), got size {size}")
    overrides = {"image_shape": (size, size, 3)} if family.resizable else {}
    stem, layers, norm = _parts(_vision_encoder(_from_preset(info.name, weights == "preset", overrides)),
                                config.family)
    if len(layers) != config.num_layers:
        raise RuntimeError(f"{info.name} has {len(layers)} transformer layers, its config {config.num_layers}")
    images = keras.Input((size, size, 3), name="images")
    x = images
    for layer, name in [*stem, *((layer, layer_name(i)) for i, layer in enumerate(layers)), (norm, FINAL_NORM)]:
        x = _copy(layer, name, x)
    return keras.Model(images, x, name=config.family)


def _copy(layer, name: str, x):
    """A new layer like `layer`, named `name`, called on x, with `layer`'s weights (the preset's own layers are
    called in its graph already, and a layer called twice has no single output to cut at)."""
    copy = type(layer).from_config({**_constructor_config(layer), "name": name})
    output = copy(x)
    copy.set_weights(layer.get_weights())
    return output


def _parts(encoder, family: str) -> tuple[list, list, object]:
    """The stem layers with their flat names, the transformer layers and the final norm of a KerasHub encoder."""
    import keras

    top = [layer for layer in encoder.layers if not isinstance(layer, keras.layers.InputLayer)]
    if family == "dinov2":  # embeddings, encoder (holding the layers), layernorm
        return [(top[0], EMBEDDING)], list(top[1].layers), top[2]
    if family == "vit":  # patching and embedding, encoder (holding dropout, the layers and the norm)
        encoder_layer = top[1]
        stem = [(top[0], "patch_embedding"), (encoder_layer.dropout, EMBEDDING)]  # block 0 ends after the dropout
        return stem, list(encoder_layer.encoder_layers), encoder_layer.layer_norm
    blocks = [layer for layer in top if type(layer).__name__ == "SigLIPEncoderLayer"]  # siglip
    return [(top[0], EMBEDDING)], blocks, top[1 + len(blocks)]


def _constructor_config(layer) -> dict:
    """The layer's config less what its constructor does not take (ViT's patch embedding reports derived sizes)."""
    parameters = inspect.signature(type(layer).__init__).parameters
    return {key: value for key, value in layer.get_config().items() if key in parameters or key in _LAYER_KWARGS}


def _from_preset(name: str, load_weights: bool, overrides: dict):
    import keras_hub

    try:
        return keras_hub.models.Backbone.from_preset(name, load_weights=load_weights, **overrides)
    except Exception as error:  # kagglehub's download fails as ConnectionError, OSError or ValueError
        if is_local_preset(name):
            raise
        raise StudyError(_missing_preset_message(name, error)) from error


def _missing_preset_message(name: str, error: Exception) -> str:
    """One line: the preset, why KerasHub could not get it and where it caches presets."""
    reason = " ".join(str(error).split())[:200]
    return (
        f"KerasHub preset {name} is not available: KerasHub could not download it ({type(error).__name__}: "
        f"{reason}); it caches presets in {kagglehub_cache()} (KAGGLEHUB_CACHE; KERAS_HOME for Keras' own files), "
        "so it needs the network once, or give backbone.name as a local preset folder (save_to_preset)"
    )


def _vision_encoder(backbone):
    """The image encoder of a preset: the backbone itself, or a SigLIP backbone's vision encoder."""
    return getattr(backbone, "vision_encoder", backbone)
