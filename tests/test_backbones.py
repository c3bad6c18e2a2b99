"""Backbones one by one: where each block map cuts the real Keras models, the cnn, user errors and ImageNet weights
offline (what every registered backbone promises is in test_backbone_family.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from bisect import bisect_left
from dataclasses import replace
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers.backbones import smallest

from study.core.errors import StudyError
from study.protocol.blocks import Block, backbone_info
from study.training.models.backbones import (
    build_backbone,
    layer_blocks,
    preprocess,
    truncate,
)

ROOT = Path(__file__).resolve().parents[1]
MOBILENETV2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
MOBILENETV2_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"

CNN_WIDTH = 8

# Output (height, width, channels) of each block at the backbone's min_size: fixes where every stage ends.
BLOCK_SHAPES = {
    "mobilenetv2": [(16, 16, 32), (16, 16, 16), (8, 8, 24), (4, 4, 32), (2, 2, 64), (2, 2, 96), (1, 1, 160),
                    (1, 1, 320), (1, 1, 1280)],
    "mobilenet": [(16, 16, 32), (16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512), (1, 1, 1024)],
    "resnet50": [(8, 8, 64), (8, 8, 256), (4, 4, 512), (2, 2, 1024), (1, 1, 2048)],
    "vgg16": [(16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512), (1, 1, 512)],
    "densenet121": [(8, 8, 64), (4, 4, 128), (2, 2, 256), (1, 1, 512), (1, 1, 1024)],
    "efficientnetb0": [(16, 16, 32), (16, 16, 16), (8, 8, 24), (4, 4, 40), (2, 2, 80), (2, 2, 112), (1, 1, 192),
                       (1, 1, 320), (1, 1, 1280)],
    "cnn": [(16, 16, 32), (8, 8, 32), (4, 4, 64), (2, 2, 128), (1, 1, 256)],
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


def _h5_kernel(path: Path, layer: str) -> np.ndarray:
    with h5py.File(path, "r") as file:
        group = file[layer]
        return group[group.attrs["weight_names"][0]][()]


# --------------------------------------------------------------------------------------------- block maps
@pytest.mark.parametrize("name", sorted(UNIT_RULES))
def test_blocks_keep_keras_units_whole(name):
    model, info = smallest(name), backbone_info(name)
    for layer, block in zip(model.layers[1:], layer_blocks(model, info)[1:]):
        expected = [rule(m) for pattern, rule in UNIT_RULES[name] if (m := re.match(pattern, layer.name))]
        assert expected, f"no rule for layer {layer.name}"
        assert block == expected[0], f"{layer.name} is in block {info.blocks[block].name}"


@pytest.mark.parametrize("name", sorted(BLOCK_SHAPES))
def test_block_output_shapes(name):
    model, info = smallest(name), backbone_info(name)
    shapes = [tuple(truncate(model, info, at).output.shape[1:]) for at in range(len(info.blocks))]
    assert shapes == BLOCK_SHAPES[name]


def test_truncate_out_of_range():
    with pytest.raises(StudyError, match="blocks 0..4"):
        truncate(smallest("vgg16"), backbone_info("vgg16"), 5)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (lambda blocks: blocks[:-1], "layer block5_conv1 of vgg16 is after the last block"),
        (lambda blocks: (*blocks[:-1], Block("block5", "nope")), "vgg16 has no layer nope"),
        (lambda blocks: blocks[::-1], "not in model order"),
    ],
)
def test_layer_blocks_reports_a_broken_map(blocks, message):
    info = backbone_info("vgg16")
    with pytest.raises(RuntimeError, match=message):
        layer_blocks(smallest("vgg16"), replace(info, blocks=blocks(info.blocks)))


# ---------------------------------------------------------------------------------------------- preprocess
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
