"""Tiny random-initialised KerasHub encoders saved as local presets (save_to_preset), one per registered family."""

from __future__ import annotations

from pathlib import Path

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY = {"hidden_dim": 16, "num_heads": 2}


def _dinov2(folder: Path) -> None:
    import keras_hub

    keras_hub.models.DINOV2Backbone(patch_size=14, num_layers=3, intermediate_dim=32, image_shape=(28, 28, 3),
                                    position_embedding_shape=(28, 28, 3), **TINY).save_to_preset(folder)
    keras_hub.layers.DINOV2ImageConverter(  # ImageNet's mean and deviation on 0..1, as the published presets
        image_size=(28, 28), scale=[1 / (255 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
    ).save_to_preset(folder)


def _vit(folder: Path) -> None:  # no image converter: the family's preprocessing
    import keras_hub

    keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=16, num_layers=3, mlp_dim=32,
                                 **TINY).save_to_preset(folder)


def _siglip(folder: Path) -> None:
    import keras_hub
    from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

    SigLIPVisionEncoder(patch_size=16, num_layers=5, intermediate_dim=32, image_shape=(32, 32, 3),
                        **TINY).save_to_preset(folder)
    keras_hub.layers.SigLIPImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0).save_to_preset(folder)


def _resnet(folder: Path) -> None:
    import keras_hub

    keras_hub.models.ResNetBackbone(  # KerasHub wants 64 filters in the first stack
        input_conv_filters=[8], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 8], stackwise_num_blocks=[2, 1],
        stackwise_num_strides=[1, 2], block_type="bottleneck_block").save_to_preset(folder)
    keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=[1 / (255 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
    ).save_to_preset(folder)


def _densenet(folder: Path) -> None:  # no image converter: the family's preprocessing
    import keras_hub

    keras_hub.models.DenseNetBackbone(stackwise_num_repeats=[1, 2], growth_rate=4).save_to_preset(folder)


def _efficientnet(folder: Path) -> None:
    import keras_hub

    keras_hub.models.EfficientNetBackbone(  # stage 1 keeps its width (a residual sum), stage 2 repeats its block
        stackwise_width_coefficients=[1.0] * 3, stackwise_depth_coefficients=[1.0] * 3,
        stackwise_kernel_sizes=[3, 3, 3], stackwise_num_repeats=[1, 2, 1], stackwise_input_filters=[8, 8, 8],
        stackwise_output_filters=[8, 8, 16], stackwise_expansion_ratios=[1, 2, 2],
        stackwise_squeeze_and_excite_ratios=[0.25] * 3, stackwise_strides=[1, 2, 2], stackwise_block_types=["v1"] * 3,
    ).save_to_preset(folder)  # its config leaves out num_features: the default 1280 it loads with
    keras_hub.layers.EfficientNetImageConverter(image_size=(32, 32), scale=1 / 255).save_to_preset(folder)


# family -> a function writing a tiny preset of it into a folder
MAKERS = {"dinov2": _dinov2, "vit": _vit, "siglip": _siglip, "resnet": _resnet, "densenet": _densenet,
          "efficientnet": _efficientnet}


def tiny_preset(family: str, root: Path) -> str:
    """The folder of a tiny preset of the family under root, written on first use (random weights, seed 0)."""
    import keras

    folder = root / f"tiny_{family}"
    if not (folder / "config.json").is_file():
        keras.utils.set_random_seed(0)
        MAKERS[family](folder)
    return str(folder)
