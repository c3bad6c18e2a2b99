"""Random-initialised KerasHub presets of known presets' architectures, saved as local preset folders: what the cost
benchmark and a protocol's dry run use where the real weights would need the network."""

from __future__ import annotations

from pathlib import Path

# The architecture of each preset (KerasHub's constructor arguments), as its published config.json holds it
ARCHITECTURES = {
    "dinov2_small": ("DINOV2Backbone", {"patch_size": 14, "num_layers": 12, "hidden_dim": 384, "num_heads": 6,
                                        "intermediate_dim": 1536, "image_shape": (224, 224, 3),
                                        "position_embedding_shape": (518, 518, 3)}),
    "vit_base_patch16_224_imagenet": ("ViTBackbone", {"image_shape": (224, 224, 3), "patch_size": 16,
                                                      "num_layers": 12, "num_heads": 12, "hidden_dim": 768,
                                                      "mlp_dim": 3072}),
    "siglip_base_patch16_224": ("SigLIPVisionEncoder", {"patch_size": 16, "hidden_dim": 768, "num_layers": 12,
                                                        "num_heads": 12, "intermediate_dim": 3072,
                                                        "image_shape": (224, 224, 3)}),
}


def write_random_preset(preset: str, folder: str) -> str:
    """Save a random-initialised encoder of the preset's architecture into folder (kept if it is there)."""
    import keras_hub
    from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

    if not (Path(folder) / "config.json").is_file():
        class_name, arguments = ARCHITECTURES.get(preset) or _cnn_architecture(preset)
        constructor = SigLIPVisionEncoder if class_name == "SigLIPVisionEncoder" else getattr(
            keras_hub.models, class_name)
        constructor(**arguments).save_to_preset(folder)
    return folder


def _cnn_architecture(preset: str) -> tuple[str, dict]:
    """A known CNN preset's KerasHub class and constructor arguments (study/protocol/hub_cnn.py)."""
    from study.protocol.hub_cnn import KNOWN_CNN_PRESETS
    from study.protocol.hub_presets import HUB_FAMILIES

    family, arguments = KNOWN_CNN_PRESETS[preset]
    return HUB_FAMILIES[family].classes[0], arguments
