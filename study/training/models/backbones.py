"""Backbones: build a headless network by block map, preprocess its input, and cut it by block.

TensorFlow and Keras are imported inside the functions that need them, so importing this module
stays cheap for `plan`, `validate` and the report.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from study.core.errors import StudyError
from study.protocol.blocks import BackboneInfo, backbone_info
from study.protocol.radimagenet import RADIMAGENET, RADIMAGENET_DOWNLOAD, RADIMAGENET_FILES, preprocessing_mode

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_URL = re.compile(r"https?://\S+")


# ------------------------------------------------------------------------------------------------ build
def build_backbone(name: str, weights: str, size: int, width: int | None = None) -> keras.Model:
    """A headless backbone on (size, size, 3) input whose output is its last block's last layer.

    `weights` is "imagenet" (Keras' own cache and download), "radimagenet" (RadImageNet's file in Keras' models
    folder), "none" (random init) or a weights file; for a KerasHub preset "preset" (KerasHub's cache and download)
    or "none".
    `width` is the base channel count of a backbone built by its own builder (the cnn) and is refused for the
    keras.applications ones.
    """
    info = backbone_info(name)
    _check_size(info, size)
    logger.info("building %s at %d px, weights %s", info.name, size, weights)
    if info.source == "keras_hub":
        from study.training.models.hub import build_hub_backbone

        if width is not None:
            raise StudyError(f"width applies only to the cnn backbone, not to {info.name} (got width {width})")
        return build_hub_backbone(info, weights, size)
    if info.builder is not None:
        return _builder(info.builder)(weights, size, info.width if width is None else width)
    if width is not None:
        raise StudyError(f"width applies only to the cnn backbone, not to {info.name} (got width {width})")
    if weights == "imagenet":
        return _build_imagenet(info, size)
    model = _keras_application(info, None, size)
    if weights == RADIMAGENET:
        _load_weights_file(model, _radimagenet_file(info))
    elif weights != "none":
        _load_weights_file(model, Path(weights))
    return model


def _builder(path: str) -> Callable[[str, int, int | None], keras.Model]:
    """The function at a dotted path ("package.module.function"), imported now."""
    module, function = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), function)


def _check_size(info: BackboneInfo, size: int) -> None:
    if size < info.min_size:
        raise StudyError(f"{info.name} needs inputs of at least {info.min_size} px, got size {size}")


def _keras_application(info: BackboneInfo, weights: str | None, size: int) -> keras.Model:
    import keras

    if info.keras_class is None:
        raise ValueError(f"{info.name} is built by {info.builder}, not by keras.applications")
    constructor = getattr(keras.applications, info.keras_class)
    return constructor(include_top=False, weights=weights, input_shape=(size, size, 3))


def _build_imagenet(info: BackboneInfo, size: int) -> keras.Model:
    try:
        return _keras_application(info, "imagenet", size)
    except Exception as error:  # Keras' download fails as Exception, URLError, OSError or ValueError
        raise StudyError(_missing_weights_message(info, size, error)) from error


def _missing_weights_message(info: BackboneInfo, size: int, error: Exception) -> str:
    """One line: the architecture and size, the file Keras wanted, why it failed and where to put it."""
    wanted = _wanted_file(error)
    what = f"the file {wanted}" if wanted else "its weights file"
    reason = _one_line(str(error).rsplit(" -- ", 1)[-1])
    return (
        f"ImageNet weights for {info.keras_class} at {size} px are not available: Keras wanted {what} "
        f"and could not get it ({reason}); put it in {_keras_models_dir()} or give weights as a file path"
    )


def _wanted_file(error: BaseException | None) -> str | None:
    """The weights file name in the URL of Keras' download error (or of its causes), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        match = _URL.search(str(error))
        if match:
            return match.group().rstrip(":").rsplit("/", 1)[-1]
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _keras_models_dir() -> str:
    """Where Keras looks for application weights: $KERAS_HOME/models, or ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.expanduser(os.path.join("~", ".keras"))
    return os.path.join(home, "models") + os.sep


def _radimagenet_file(info: BackboneInfo) -> Path:
    """RadImageNet's file for the backbone in Keras' models folder; one line on what to get from where if absent."""
    name = RADIMAGENET_FILES.get(info.name)
    if name is None:
        raise StudyError(f"RadImageNet weights exist for {', '.join(sorted(RADIMAGENET_FILES))} only, "
                         f"not for {info.name}")
    path = Path(_keras_models_dir()) / name
    if not path.is_file():
        raise StudyError(
            f"RadImageNet weights for {info.keras_class} are not available: no file {path}; download {name} from "
            f"RadImageNet's models folder {RADIMAGENET_DOWNLOAD} (linked from https://github.com/BMEII-AI/RadImageNet) "
            f"and put it in {_keras_models_dir()}"
        )
    return path


# ------------------------------------------------------------------------------------------- weights file
def _load_weights_file(model: keras.Model, path: Path) -> None:
    """Load a weights file by topology, or by layer name for a legacy .h5 whose topology differs."""
    if not path.is_file():
        raise StudyError(f"weights file {path} not found (weights is 'imagenet', 'none' or a file path)")
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises ValueError, KeyError or OSError for files that do not fit
        if not _is_legacy_h5(path):
            raise StudyError(f"weights file {path} does not fit {model.name}: {_one_line(error)}") from error
        logger.info("%s: topology differs from %s, loading by layer name", path, model.name)
        _load_by_name(model, path)


def _is_legacy_h5(path: Path) -> bool:
    return path.suffix in {".h5", ".hdf5"} and not path.name.endswith(".weights.h5")


def _load_by_name(model: keras.Model, path: Path) -> None:
    in_file = _h5_layers(path)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in in_file]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise StudyError(f"weights file {path} lacks {len(missing)} layers of {model.name} ({shown})")
    try:
        model.load_weights(path, by_name=True)
    except Exception as error:  # shape mismatches surface as ValueError
        raise StudyError(f"weights file {path} does not fit {model.name}: {_one_line(error)}") from error


def _h5_layers(path: Path) -> set[str]:
    """Names of the layers that hold weights in a legacy Keras .h5 weights or model file."""
    import h5py

    if not h5py.is_hdf5(path):
        raise StudyError(f"weights file {path} is not an HDF5 file")
    with h5py.File(path, "r") as file:
        group = file["model_weights"] if "layer_names" not in file.attrs and "model_weights" in file else file
        names = [_text(name) for name in group.attrs.get("layer_names", [])]
        return {name for name in names if len(group[name].attrs.get("weight_names", [])) > 0}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _one_line(error: Exception | str, limit: int = 300) -> str:
    """The error's message on one line, cut short: Keras' mismatch errors print whole tensors."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------- preprocess
def preprocess(name: str, images: np.ndarray, weights: str = "imagenet") -> np.ndarray:
    """uint8 N x H x W (x 1 or 3) images as float32 N x H x W x 3, scaled the way the backbone with these initial
    weights expects (study.protocol.radimagenet.preprocessing_mode).

    "tf", "caffe" and "torch" equal keras.applications.imagenet_utils.preprocess_input without
    importing TensorFlow; "radimagenet" is "caffe" divided by 255; "none" keeps 0..255; "unit" divides by 255.
    """
    return PREPROCESSING[preprocessing_mode(name, weights)](_rgb_float(images))


def _tf(x: np.ndarray) -> np.ndarray:
    return x / 127.5 - 1.0  # -1..1


def _caffe(x: np.ndarray) -> np.ndarray:
    return x[..., ::-1] - _CAFFE_MEAN_BGR  # BGR, less ImageNet's mean


def _torch(x: np.ndarray) -> np.ndarray:
    return (x / 255.0 - _TORCH_MEAN) / _TORCH_STD  # RGB, standardised by ImageNet's mean and deviation


def _radimagenet(x: np.ndarray) -> np.ndarray:
    return _caffe(x) / 255.0  # RadImageNet's scripts: preprocess_input ("caffe"), then rescale=1/255


def _unit(x: np.ndarray) -> np.ndarray:
    return x / 255.0  # 0..1


def _kept(x: np.ndarray) -> np.ndarray:
    return x  # 0..255: the network rescales inside


# The preprocessing modes a registry entry (or, "radimagenet", the initial weights) may name: float32 RGB 0..255
# in, the backbone's input out.
PREPROCESSING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tf": _tf, "caffe": _caffe, "torch": _torch, "unit": _unit, "none": _kept, "radimagenet": _radimagenet,
}


def _rgb_float(images: np.ndarray) -> np.ndarray:
    """uint8 images as float32 with 3 channels, grey repeated."""
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected N x H x W x C images with C 1 or 3, got shape {images.shape}")
    x = images.astype(np.float32)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


# ----------------------------------------------------------------------------------------------- blocks
def layer_blocks(model: keras.Model, info: BackboneInfo) -> list[int]:
    """The block index of each layer of `model.layers` in order; -1 for the input layer."""
    import keras

    ends = _block_ends(model, info)
    blocks = []
    for position, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            blocks.append(-1)
            continue
        block = bisect_left(ends, position)
        if block == len(ends):
            message = f"layer {layer.name} of {model.name} is after the last block"
            raise RuntimeError(f"block map of {info.name}: {message}")
        blocks.append(block)
    return blocks


def _block_ends(model: keras.Model, info: BackboneInfo) -> list[int]:
    """Positions in model.layers of each block's last layer; a bug in the block map if absent or unordered."""
    position = {layer.name: index for index, layer in enumerate(model.layers)}
    missing = [block.last_layer for block in info.blocks if block.last_layer not in position]
    if missing:
        raise RuntimeError(f"block map of {info.name}: model {model.name} has no layer {', '.join(missing)}")
    ends = [position[block.last_layer] for block in info.blocks]
    if any(later <= earlier for earlier, later in zip(ends, ends[1:])):
        raise RuntimeError(f"block map of {info.name}: last layers are not in model order in {model.name}")
    return ends


def truncate(model: keras.Model, info: BackboneInfo, at: int) -> keras.Model:
    """The backbone cut after block `at` (blocks 0..at kept), sharing the layers of `model`."""
    import keras

    last = len(info.blocks) - 1
    if not 0 <= at <= last:
        raise StudyError(f"{info.name} has blocks 0..{last} ({', '.join(info.block_names())}), got at {at}")
    output = model.get_layer(info.blocks[at].last_layer).output
    return keras.Model(model.input, output, name=f"{model.name}_to_{info.blocks[at].name}")


def pool_features(features: np.ndarray, info: BackboneInfo) -> np.ndarray:
    """Block outputs as one vector per image by the entry's pooling: the mean of a feature map (N x H x W x C),
    the class token (cls) or the mean of the tokens (mean) of a sequence (N x tokens x width)."""
    if info.pooling == "cls":
        return features[:, 0]
    return features.mean(axis=tuple(range(1, features.ndim - 1)))
