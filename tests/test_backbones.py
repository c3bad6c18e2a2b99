"""Backbones: block maps against the real Keras models, preprocessing, the cnn, and ImageNet weights offline."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
from bisect import bisect_left
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers.keras_home import point_keras_home
from keras.applications import imagenet_utils

from study.core.errors import StudyError
from study.protocol.blocks import BLOCK_MAPS, BackboneInfo, Block, backbone_info
from study.training.models.backbones import (
    build_backbone,
    layer_blocks,
    preprocess,
    truncate,
)

ROOT = Path(__file__).resolve().parents[1]
MOBILENETV2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
MOBILENETV2_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"

SIZE = {name: 64 for name in BLOCK_MAPS} | {"cnn": 32}
CNN_WIDTH = 8

# Output (height, width, channels) of each block at SIZE px: fixes where every stage ends.
BLOCK_SHAPES = {
    "mobilenetv2": [(32, 32, 32), (32, 32, 16), (16, 16, 24), (8, 8, 32), (4, 4, 64), (4, 4, 96), (2, 2, 160),
                    (2, 2, 320), (2, 2, 1280)],
    "mobilenet": [(32, 32, 32), (32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512), (2, 2, 1024)],
    "resnet50": [(16, 16, 64), (16, 16, 256), (8, 8, 512), (4, 4, 1024), (2, 2, 2048)],
    "vgg16": [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512), (2, 2, 512)],
    "densenet121": [(16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512), (2, 2, 1024)],
    "efficientnetb0": [(32, 32, 32), (32, 32, 16), (16, 16, 24), (8, 8, 40), (4, 4, 80), (4, 4, 112), (2, 2, 192),
                       (2, 2, 320), (2, 2, 1280)],
    "cnn": [(32, 32, 8), (16, 16, 8), (8, 8, 16), (4, 4, 32), (2, 2, 64)],
}

# The block each layer should fall in, read from Keras' own layer names (an oracle independent of the map).
UNIT_RULES = {
    "mobilenetv2": [
        (r"(Conv1|bn_Conv1)", lambda m: 0),
        (r"expanded_conv_", lambda m: 1),
        (r"block_(\d+)_", lambda m: 2 + bisect_left([2, 5, 9, 12, 15], int(m[1]))),
        (r"(Conv_1|out_relu)", lambda m: 8),
    ],
    "mobilenet": [
        (r"conv1", lambda m: 0),
        (r"conv_(?:dw|pw|pad)_(\d+)", lambda m: 1 + bisect_left([1, 3, 5, 11], int(m[1]))),
    ],
    "resnet50": [(r"(conv1|pool1)_", lambda m: 0), (r"conv(\d)_block", lambda m: int(m[1]) - 1)],
    "vgg16": [(r"block(\d)_", lambda m: int(m[1]) - 1)],
    "densenet121": [
        (r"(zero_padding2d|conv1_|pool1$)", lambda m: 0),
        (r"(?:conv|pool)(\d)_", lambda m: int(m[1]) - 1),
        (r"(bn|relu)$", lambda m: 4),
    ],
    "efficientnetb0": [
        (r"(rescaling|normalization|stem_)", lambda m: 0),
        (r"block(\d)[a-z]_", lambda m: int(m[1])),
        (r"top_", lambda m: 8),
    ],
    "cnn": [(r"stem_", lambda m: 0), (r"block(\d)_", lambda m: int(m[1]))],
}


@pytest.fixture(scope="module")
def built():
    """Each backbone built once for the module, random weights, at SIZE px (the cnn with width CNN_WIDTH)."""
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            width = CNN_WIDTH if name == "cnn" else None
            cache[name] = build_backbone(name, "none", SIZE[name], width)
        return cache[name]

    return get


def _h5_kernel(path: Path, layer: str) -> np.ndarray:
    with h5py.File(path, "r") as file:
        group = file[layer]
        return group[group.attrs["weight_names"][0]][()]


# --------------------------------------------------------------------------------------------- block maps
@pytest.mark.parametrize("name", sorted(BLOCK_MAPS))
def test_block_map_matches_model(name, built):
    model, info = built(name), backbone_info(name)
    positions = [model.layers.index(model.get_layer(block.last_layer)) for block in info.blocks]
    assert positions == sorted(set(positions))
    assert model.get_layer(info.blocks[-1].last_layer).output is model.outputs[0]
    assert positions[-1] == len(model.layers) - 1


@pytest.mark.parametrize("name", sorted(BLOCK_MAPS))
def test_blocks_partition_layers(name, built):
    model, info = built(name), backbone_info(name)
    blocks = layer_blocks(model, info)
    assert len(blocks) == len(model.layers)
    assert [b for b in blocks if b < 0] == [-1] and blocks[0] == -1
    assert blocks[1:] == sorted(blocks[1:])
    assert set(blocks[1:]) == set(range(len(info.blocks)))


@pytest.mark.parametrize("name", sorted(BLOCK_MAPS))
def test_blocks_keep_keras_units_whole(name, built):
    model, info = built(name), backbone_info(name)
    for layer, block in zip(model.layers[1:], layer_blocks(model, info)[1:]):
        expected = [rule(m) for pattern, rule in UNIT_RULES[name] if (m := re.match(pattern, layer.name))]
        assert expected, f"no rule for layer {layer.name}"
        assert block == expected[0], f"{layer.name} is in block {info.blocks[block].name}"


@pytest.mark.parametrize("name", sorted(BLOCK_MAPS))
def test_truncate_gives_each_block_output(name, built):
    model, info = built(name), backbone_info(name)
    shapes = [tuple(truncate(model, info, at).output.shape[1:]) for at in range(len(info.blocks))]
    assert shapes == BLOCK_SHAPES[name]
    assert truncate(model, info, 0).input is model.input


def test_truncate_out_of_range(built):
    with pytest.raises(StudyError, match="blocks 0..4"):
        truncate(built("vgg16"), backbone_info("vgg16"), 5)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (lambda blocks: blocks[:-1], "layer block5_conv1 of vgg16 is after the last block"),
        (lambda blocks: (*blocks[:-1], Block("block5", "nope")), "vgg16 has no layer nope"),
        (lambda blocks: blocks[::-1], "not in model order"),
    ],
)
def test_layer_blocks_reports_a_broken_map(blocks, message, built):
    info = backbone_info("vgg16")
    broken = BackboneInfo(info.name, info.keras_class, info.preprocessing, info.min_size, blocks(info.blocks))
    with pytest.raises(RuntimeError, match=message):
        layer_blocks(built("vgg16"), broken)


# ---------------------------------------------------------------------------------------------- preprocess
@pytest.mark.parametrize(("name", "mode"), [("mobilenetv2", "tf"), ("resnet50", "caffe"), ("densenet121", "torch")])
def test_preprocess_equals_keras(name, mode):
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    expected = imagenet_utils.preprocess_input(images.astype(np.float32), mode=mode, data_format="channels_last")
    out = preprocess(name, images)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_preprocess_none_and_unit():
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(preprocess("efficientnetb0", images), images.astype(np.float32))
    np.testing.assert_allclose(preprocess("cnn", images), images / 255.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 5, 1), (2, 5, 5)])
def test_preprocess_grey_to_three_channels(shape):
    grey = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = preprocess("mobilenetv2", grey)
    assert out.shape == (2, 5, 5, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out, preprocess("mobilenetv2", np.repeat(grey.reshape(2, 5, 5, 1), 3, axis=-1)))


# ------------------------------------------------------------------------------------------------- the cnn
def test_cnn_runs_and_is_deterministic_under_seed():
    def weights(seed):
        keras.utils.set_random_seed(seed)
        model = build_backbone("cnn", "none", 32, CNN_WIDTH)
        return model, [w.numpy() for w in model.weights]

    model, first = weights(7)
    _, again = weights(7)
    _, other = weights(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0).shape == (2, 2, 2, 64)


def test_cnn_default_width():
    assert build_backbone("cnn", "none", 16).output.shape[-1] == 32 * 2**3


# ---------------------------------------------------------------------------------------------- user errors
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("resnet50", "none", 31), "at least 32 px"),
        (("cnn", "none", 15), "at least 16 px"),
        (("inception", "none", 64), "unknown backbone 'inception'"),
        (("cnn", "imagenet", 32), "weights must be none"),
        (("resnet50", "none", 64, 16), "width applies only to the cnn"),
        (("vgg16", "/nonexistent/weights.h5", 32), "not found"),
    ],
)
def test_user_errors(args, message):
    with pytest.raises(StudyError, match=message):
        build_backbone(*args)


def test_import_does_not_load_tensorflow():
    code = "import sys, study.training.models.backbones; assert not {'tensorflow', 'keras'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ------------------------------------------------------------------------------------------------- weights
@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_imagenet_weights_load_offline(imagenet_keras_home):
    model = build_backbone("mobilenetv2", "imagenet", 64)  # Keras falls back to the 224 px file
    expected = _h5_kernel(imagenet_keras_home / "models" / MOBILENETV2_NO_TOP, "Conv1")
    np.testing.assert_array_equal(model.get_layer("Conv1").kernel.numpy(), expected)


@pytest.mark.integration
def test_weights_file_with_other_topology_loads_by_name(imagenet_keras_home):
    path = imagenet_keras_home / "models" / MOBILENETV2_TOP
    model = build_backbone("mobilenetv2", str(path), 96)
    np.testing.assert_array_equal(model.get_layer("Conv_1").kernel.numpy(), _h5_kernel(path, "Conv_1"))


@pytest.mark.integration
def test_weights_file_of_another_architecture_is_refused(imagenet_keras_home):
    path = imagenet_keras_home / "models" / "mobilenet_2_5_128_tf_no_top.h5"
    with pytest.raises(StudyError, match="lacks .* layers of mobilenetv2"):
        build_backbone("mobilenetv2", str(path), 64)


def test_missing_imagenet_weights_say_what_and_where(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    point_keras_home(monkeypatch, tmp_path)
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(StudyError) as caught:
        build_backbone("resnet50", "imagenet", 64)
    message = str(caught.value)
    assert "\n" not in message
    assert "ResNet50 at 64 px" in message
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models") in message
