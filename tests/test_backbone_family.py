"""The promises every registered backbone keeps, checked for each entry of the registry as it is added: its block
map fits the built network, truncating gives each block's tensor, its preprocessing gives the documented range, its
smallest size builds, its cost is known, the protocol accepts its name, and missing ImageNet weights say so on one
line. Each KerasHub family (study/protocol/hub_presets.py) runs through the same checks as a tiny random-initialised
preset saved into a folder (tests/helpers/hub_presets.py)."""

from __future__ import annotations

import re
import urllib.error
from dataclasses import replace

import keras
import numpy as np
import pytest
from helpers.backbones import smallest
from helpers.hub_presets import MAKERS, tiny_preset
from helpers.keras_home import point_keras_home
from helpers.protocols import protocol_file_text
from keras.applications import imagenet_utils

from study.cli import main
from study.core.errors import StudyError
from study.protocol.blocks import BACKBONES, backbone_info, register
from study.protocol.hub_presets import HUB_FAMILIES
from study.protocol.schema import parse_protocol
from study.training.models.backbones import (
    PREPROCESSING,
    build_backbone,
    layer_blocks,
    preprocess,
    truncate,
)

HUB = "keras_hub:"  # a parameter naming a KerasHub family, resolved to its tiny preset's folder
NAMES = sorted(BACKBONES) + [HUB + family for family in sorted(HUB_FAMILIES)]
KERAS_APPLICATIONS = sorted(name for name, info in BACKBONES.items() if info.keras_class)
# The range of each preprocessing mode's output for uint8 input, as its entry documents it.
RANGES = {
    "tf": (-1.0, 1.0),
    "caffe": (-123.68, 255 - 103.939),  # per channel, less ImageNet's BGR mean
    "torch": (-0.485 / 0.229, (1 - 0.406) / 0.225),  # per channel, standardised by ImageNet's mean and deviation
    "none": (0.0, 255.0),
    "unit": (0.0, 1.0),
}


@pytest.fixture(scope="session")
def hub_presets(tmp_path_factory):
    return tmp_path_factory.mktemp("hub_presets")


@pytest.fixture
def name(request, hub_presets) -> str:
    """The backbone's protocol name: a registry name, or the folder of a KerasHub family's tiny preset."""
    param = request.param
    return tiny_preset(param.removeprefix(HUB), hub_presets) if param.startswith(HUB) else param


def _images(size: int, count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------- the block map
@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_min_size_builds_and_smaller_is_refused(name):
    info = backbone_info(name)
    assert tuple(smallest(name).input.shape[1:]) == (info.min_size, info.min_size, 3)
    with pytest.raises(StudyError, match=f"at least {info.min_size} px"):
        build_backbone(name, "none", info.min_size - 1)


@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_block_last_layers_exist_in_order_and_end_at_the_output(name):
    model, info = smallest(name), backbone_info(name)
    positions = [model.layers.index(model.get_layer(block.last_layer)) for block in info.blocks]
    assert positions == sorted(set(positions))
    assert positions[-1] == len(model.layers) - 1
    assert model.get_layer(info.blocks[-1].last_layer).output is model.outputs[0]


@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_blocks_partition_the_layers(name):
    model, info = smallest(name), backbone_info(name)
    blocks = layer_blocks(model, info)
    assert len(blocks) == len(model.layers)
    assert [b for b in blocks if b < 0] == [-1] and blocks[0] == -1
    assert blocks[1:] == sorted(blocks[1:])
    assert set(blocks[1:]) == set(range(len(info.blocks)))


@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_truncate_gives_the_full_models_tensor_at_each_block(name):
    model, info = smallest(name), backbone_info(name)
    x = preprocess(name, _images(info.min_size))
    probe = keras.Model(model.input, [model.get_layer(block.last_layer).output for block in info.blocks])
    expected = [np.asarray(tensor) for tensor in probe(x, training=False)]
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected[-1], rtol=1e-5, atol=1e-6)
    for at in range(len(info.blocks)):
        cut = truncate(model, info, at)
        assert cut.input is model.input
        np.testing.assert_allclose(np.asarray(cut(x, training=False)), expected[at], rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_preprocessing_maps_uint8_to_the_documented_range(name):
    mode = backbone_info(name).preprocessing
    assert mode in PREPROCESSING
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)  # grey, every value once
    out = preprocess(name, ramp)
    assert out.dtype == np.float32 and out.shape == (1, 16, 16, 3)
    low, high = RANGES[mode]
    np.testing.assert_allclose([out.min(), out.max()], [low, high], rtol=1e-5)


@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_preprocessing_equals_keras_or_its_definition(name):
    images = _images(8, count=3)
    mode = backbone_info(name).preprocessing
    x = images.astype(np.float32)
    definitions = {"none": x, "unit": x / 255.0}
    expected = definitions[mode] if mode in definitions else imagenet_utils.preprocess_input(
        x.copy(), mode=mode, data_format="channels_last")
    np.testing.assert_allclose(preprocess(name, images), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------- cost and protocol
@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_cost_factor_is_positive(name):
    assert backbone_info(name).cost > 0


@pytest.mark.parametrize("name", NAMES, indirect=True)
def test_name_round_trips_through_the_protocol_and_plan_prints_a_cost(name, tmp_path, capsys):
    info = backbone_info(name)
    spelled = f"{name}, source: keras_hub" if info.source == "keras_hub" else info.keras_class or name.upper()
    text = protocol_file_text("tiny", size=max(16, info.min_size)).replace(
        "{name: cnn, weights: none, width: 4}", f"{{name: {spelled}, weights: none}}")
    assert parse_protocol(text).backbone.name == name
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(text)
    assert main(["plan", str(protocol), "--results-dir", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    for index, block in enumerate(info.blocks):
        assert f"  {index:>2}  {block.name:<12} ends at layer {block.last_layer}\n" in out
    rows = out[out.index("estimated time"):out.index("\ntotal: ")].splitlines()[2:]
    assert len(rows) == 2 and all(row.endswith("rate (4)") for row in rows), out


# ------------------------------------------------------------------------------------------ ImageNet weights
@pytest.mark.parametrize("name", KERAS_APPLICATIONS)
@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_missing_imagenet_weights_say_what_and_where_on_one_line(name, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    info = backbone_info(name)
    point_keras_home(monkeypatch, tmp_path)
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(StudyError) as caught:
        build_backbone(name, "imagenet", info.min_size)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"ImageNet weights for {info.keras_class} at {info.min_size} px are not available")
    assert re.search(r"Keras wanted the file \S+\.h5 and could not get it", message)
    assert str(tmp_path / "models") in message


# -------------------------------------------------------------------------------------------- the registry
def test_every_kerashub_family_has_a_tiny_preset():
    assert sorted(MAKERS) == sorted(HUB_FAMILIES)


def test_register_refuses_a_name_twice_and_an_entry_built_two_ways_or_none():
    info = backbone_info("resnet50")
    with pytest.raises(ValueError, match="registered twice"):
        register(info)
    for keras_class, builder in ((None, None), ("ResNet50", "study.training.models.cnn.build_cnn")):
        with pytest.raises(ValueError, match="exactly one of keras_class and builder"):
            register(replace(info, name="resnet50_copy", keras_class=keras_class, builder=builder))
    assert "resnet50_copy" not in BACKBONES
