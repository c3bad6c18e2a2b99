"""KerasHub encoders as backbones: the flat model is the preset's own network, cut where its hidden states are; a
local preset loads with its weights; the features cache as token sequences; the protocol names presets; a named
preset that cannot be downloaded says so on one line. No test needs the network: the presets are tiny random ones
saved into folders (tests/helpers/hub_presets.py)."""

from __future__ import annotations

import shutil

import keras
import keras_hub
import numpy as np
import pytest
from helpers.hub_presets import tiny_preset
from helpers.protocols import protocol_file_text

from study.cli import main
from study.core.errors import StudyError
from study.plan.cells import cell_settings, weights_fingerprint
from study.plan.settings import BackboneSettings
from study.protocol.arms import expand_arms
from study.protocol.blocks import backbone_info
from study.protocol.hub_presets import preset_config
from study.protocol.schema import parse_protocol
from study.training.models.arm_network import build_arm_model
from study.training.models.backbones import build_backbone, pool_features, preprocess, truncate


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {family: tiny_preset(family, root) for family in ("dinov2", "vit", "siglip")}


def _images(size: int, count: int = 3) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _hub_hidden_states(folder: str, size: int, layers: int) -> tuple[keras.Model, list, object]:
    """The KerasHub model itself, its own tensors after the embedding and after each transformer layer (index k:
    after k layers), and its output after the final norm."""
    if "dinov2" in folder:  # its pyramid outputs: stem, stage1, ... (before the final norm)
        hub = keras_hub.models.Backbone.from_preset(folder, image_shape=(size, size, 3))
        states = [hub.pyramid_outputs["stem"]] + [hub.pyramid_outputs[f"stage{i}"] for i in range(1, layers + 1)]
        return hub, states, hub.get_layer(index=-1).output
    hub = keras_hub.models.Backbone.from_preset(folder)  # siglip: images, embedding, layers, norm, pooling head
    return hub, [layer.output for layer in hub.layers[1:layers + 2]], hub.layers[layers + 2].output


@pytest.mark.parametrize("family,size", [("dinov2", 42), ("siglip", 32)])
def test_cut_after_each_block_gives_the_kerashub_models_hidden_state_there(presets, family, size):
    folder = presets[family]
    info, layers = backbone_info(folder), preset_config(folder).num_layers
    hub, states, final = _hub_hidden_states(folder, size, layers)
    ends = [states[0]] + [final if block.last_layer == "final_norm" else
                          states[int(block.last_layer.removeprefix("layer_")) + 1] for block in info.blocks[1:]]
    x = preprocess(folder, _images(size))
    expected = [np.asarray(tensor) for tensor in keras.Model(hub.input, ends)(x, training=False)]
    flat = build_backbone(folder, "preset", size)
    for at in range(len(info.blocks)):
        got = np.asarray(truncate(flat, info, at)(x, training=False))
        np.testing.assert_allclose(got, expected[at], atol=1e-5)


def test_vit_flat_model_equals_the_kerashub_model(presets):
    folder = presets["vit"]
    hub = keras_hub.models.Backbone.from_preset(folder)
    x = preprocess(folder, _images(32))
    np.testing.assert_allclose(np.asarray(build_backbone(folder, "preset", 32)(x)), np.asarray(hub(x)), atol=1e-5)


def test_a_saved_preset_loads_back_with_its_weights_and_none_draws_new_ones(presets, tmp_path):
    keras.utils.set_random_seed(3)
    saved = keras_hub.models.DINOV2Backbone(patch_size=14, num_layers=2, hidden_dim=16, num_heads=2,
                                            intermediate_dim=32, image_shape=(28, 28, 3),
                                            position_embedding_shape=(28, 28, 3))
    folder = str(tmp_path / "round_trip")
    saved.save_to_preset(folder)
    x = preprocess(folder, _images(28))
    expected = np.asarray(saved(x)["sequence_output"] if isinstance(saved.output, dict) else saved(x))
    np.testing.assert_allclose(np.asarray(build_backbone(folder, "preset", 28)(x)), expected, atol=1e-5)
    assert not np.allclose(np.asarray(build_backbone(folder, "none", 28)(x)), expected, atol=1e-3)
    assert weights_fingerprint("preset", folder).startswith("sha256:")
    assert weights_fingerprint("preset", "dinov2_small") == "preset:dinov2_small"


def test_entries_come_from_the_presets_config_and_image_converter(presets):
    dinov2, vit, siglip = (backbone_info(presets[f]) for f in ("dinov2", "vit", "siglip"))
    assert (dinov2.preprocessing, dinov2.pooling, dinov2.min_size) == ("torch", "cls", 14)
    assert (vit.preprocessing, vit.pooling, vit.min_size) == ("tf", "cls", 32)
    assert (siglip.preprocessing, siglip.pooling, siglip.min_size) == ("tf", "mean", 32)
    assert [b.name for b in siglip.blocks] == ["embed", "layer1", "layer2", "layers3_4", "layer5"]
    named = backbone_info("dinov2_small")
    assert [b.name for b in named.blocks] == ["embed", "layers1_3", "layers4_6", "layers7_9", "layers10_12"]
    assert named.blocks[-1].last_layer == "final_norm"


def test_an_image_converter_of_no_known_mode_is_refused(presets, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(open(f"{presets['vit']}/config.json").read())
    keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=0.5, offset=3.0).save_to_preset(str(folder))
    with pytest.raises(StudyError, match="image converter .* is none of the preprocessing modes"):
        backbone_info(str(folder))


def test_sizes_the_position_embeddings_cannot_take_are_refused(presets):
    with pytest.raises(StudyError, match="multiple of its patch size 14"):
        build_backbone(presets["dinov2"], "none", 30)
    with pytest.raises(StudyError, match="takes 32 px images only"):
        build_backbone(presets["vit"], "none", 48)


def test_pooling_takes_the_class_token_or_the_mean_of_the_tokens(presets):
    tokens = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(pool_features(tokens, backbone_info(presets["dinov2"])), tokens[:, 0])
    np.testing.assert_array_equal(pool_features(tokens, backbone_info(presets["siglip"])), tokens.mean(axis=1))


def _hub_protocol(folder: str, strategies: str = "") -> str:
    text = protocol_file_text("tiny", size=28, seeds=1).replace(
        "{name: cnn, weights: none, width: 4}", f"{{name: {folder}, source: keras_hub}}")
    return text.replace("  - {name: finetune, depth: [1]}", strategies or "  - {name: frozen}\n"
                        "  - {name: truncate, at: [1], depth: [1]}")


def test_the_protocol_names_a_preset_with_its_source(presets):
    protocol = parse_protocol(_hub_protocol(presets["dinov2"]))
    assert (protocol.backbone.source, protocol.backbone.weights) == ("keras_hub", "preset")
    record = [cell_settings(protocol, arm).backbone.as_dict() for s in protocol.strategies
              for arm in expand_arms(s, protocol)]
    assert record[0]["weights"] == "none" and all(r["source"] == "keras_hub" for r in record)
    assert "source" not in BackboneSettings("cnn", "none", 4).as_dict()  # records without it stay as they were
    for wrong, message in (("{name: dinov2_small}", "add source: keras_hub"),
                           ("{name: resnet50, source: keras_hub}", "not a KerasHub preset"),
                           ("{name: dinov2_small, source: keras_hub, weights: imagenet}", "preset or none")):
        with pytest.raises(Exception, match=message):
            parse_protocol(protocol_file_text("tiny").replace("{name: cnn, weights: none, width: 4}", wrong))


def test_frozen_blocks_of_a_transformer_start_the_model_at_their_cached_tokens(presets):
    protocol = parse_protocol(_hub_protocol(presets["dinov2"]))
    truncated = next(arm for arm in expand_arms(protocol.strategies[2], protocol))
    arm = build_arm_model(cell_settings(protocol, truncated), n_classes=2)
    assert arm.input_block == 0 and tuple(arm.model.input.shape[1:]) == (5, 16)  # 2 x 2 patches and the class token
    assert arm.blocks_kept == 2 and arm.blocks_trained == 1


def test_missing_named_preset_says_what_and_where_on_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # kagglehub's test endpoint on localhost: nothing answers
    with pytest.raises(StudyError) as caught:
        build_backbone("dinov2_small", "preset", 224)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("KerasHub preset dinov2_small is not available: KerasHub could not download it")
    assert str(tmp_path / "kagglehub") in message and "local preset folder" in message


@pytest.mark.slow
def test_a_protocol_on_a_local_preset_runs_frozen_and_truncated_arms(presets, tmp_path):
    protocol = tmp_path / "hub.yaml"
    protocol.write_text(_hub_protocol(presets["dinov2"]))
    dirs = ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]
    assert main(["run", str(protocol), *dirs]) == 0
    features = list((tmp_path / "results").rglob("features/*.npy"))
    assert features and all(np.load(path).ndim == 3 for path in features)
    assert (tmp_path / "report" / "tiny" / "report.md").is_file()


# ------------------------------------------------------------------------------------------- CNN families
@pytest.fixture(scope="module")
def cnn_presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn_presets")
    return {family: tiny_preset(family, root) for family in ("resnet", "densenet", "efficientnet")}


def test_cnn_entries_follow_the_stages_keras_hub_names(cnn_presets):
    resnet, densenet, efficientnet = (backbone_info(cnn_presets[f]) for f in ("resnet", "densenet", "efficientnet"))
    assert [b.last_layer for b in resnet.blocks] == ["pool1_pool", "stack0_block1_out", "stack1_block0_out"]
    assert [b.last_layer for b in densenet.blocks] == ["pool1", "transition1_pool", "relu"]
    assert [b.last_layer for b in efficientnet.blocks] == ["stem_activation", "block1a_add", "block2b_add",
                                                           "top_activation"]
    assert [(i.preprocessing, i.pooling, i.min_size) for i in (resnet, densenet, efficientnet)] == [
        ("torch", "average", 8), ("torch", "average", 8), ("unit", "average", 8)]
    named = backbone_info("efficientnet_b0_ra_imagenet")  # the stages of keras.applications' EfficientNetB0
    assert [b.last_layer for b in named.blocks[1:-1]] == [
        "block1a_project_bn", "block2b_add", "block3b_add", "block4c_add", "block5c_add", "block6d_add"]
    assert backbone_info("resnet_101_imagenet").cost > backbone_info("resnet_50_imagenet").cost


def test_resnet_stages_end_at_the_kerashub_models_pyramid_outputs(cnn_presets):
    folder = cnn_presets["resnet"]
    hub = keras_hub.models.Backbone.from_preset(folder, image_shape=(32, 32, 3))
    pyramid = [hub.pyramid_outputs[level] for level in sorted(hub.pyramid_outputs)]
    x = preprocess(folder, _images(32))
    expected = [np.asarray(tensor) for tensor in keras.Model(hub.input, pyramid)(x, training=False)]
    flat, info = build_backbone(folder, "preset", 32), backbone_info(folder)
    for at, tensor in enumerate(expected, start=1):
        np.testing.assert_allclose(np.asarray(truncate(flat, info, at)(x, training=False)), tensor, atol=1e-5)


@pytest.mark.parametrize("family", ["resnet", "densenet", "efficientnet"])
def test_a_cnn_preset_loads_with_its_weights_at_any_size_and_none_draws_new_ones(cnn_presets, family):
    folder = cnn_presets[family]
    x = preprocess(folder, _images(40))
    expected = np.asarray(keras_hub.models.Backbone.from_preset(folder)(x, training=False))
    np.testing.assert_allclose(np.asarray(build_backbone(folder, "preset", 40)(x, training=False)), expected,
                               atol=1e-5)
    assert not np.allclose(np.asarray(build_backbone(folder, "none", 40)(x, training=False)), expected, atol=1e-3)


def test_a_downloaded_preset_is_described_by_its_own_config(cnn_presets, tmp_path, monkeypatch):
    table = backbone_info("resnet_50_imagenet")
    assert len(table.blocks) == 5 and table.min_size == 32
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    download = tmp_path / "kagglehub" / "models" / "keras" / "resnetv1" / "keras" / "resnet_50_imagenet" / "3"
    shutil.copytree(cnn_presets["resnet"], download)
    downloaded = backbone_info("resnet_50_imagenet")
    assert downloaded.blocks == backbone_info(cnn_presets["resnet"]).blocks and downloaded.min_size == 8
    assert parse_protocol(protocol_file_text("tiny").replace(
        "{name: cnn, weights: none, width: 4}", "{name: resnet_50_imagenet, source: keras_hub}")).backbone.name
    monkeypatch.delenv("KAGGLEHUB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # nothing downloaded: the table again
    assert backbone_info("resnet_50_imagenet") == table
