"""`weights: radimagenet`: RadImageNet's file for the backbone from Keras' models folder, loaded into the backbone
and fed with RadImageNet's preprocessing; one line on what to get from where when the file is missing, and a protocol
error for a backbone RadImageNet has no file for."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.keras_home import point_keras_home
from helpers.protocols import protocol_file_text
from keras.applications import imagenet_utils
from keras.src.legacy.preprocessing.image import ImageDataGenerator

from study.core.errors import ProtocolError, StudyError
from study.plan.cells import plan_cells
from study.protocol.radimagenet import RADIMAGENET_DOWNLOAD, RADIMAGENET_FILES, preprocessing_mode
from study.protocol.schema import parse_protocol
from study.training.models.backbones import build_backbone, preprocess

SIZE = 32  # ResNet50's smallest input


def _protocol_text(name: str) -> str:
    return protocol_file_text("tiny", size=75).replace(
        "{name: cnn, weights: none, width: 4}", f"{{name: {name}, weights: RadImageNet}}")


def _radimagenet_style_file(path, head: bool) -> keras.Model:
    """A ResNet50 saved whole, as RadImageNet's scripts build it (keras.applications, include_top=False,
    pooling='avg'), with random weights; with `head`, their fine-tuning top (Dropout, Dense(2)) too."""
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg")
    rng = np.random.default_rng(0)
    base.set_weights([w + rng.normal(0.0, 0.01, w.shape).astype(w.dtype) for w in base.get_weights()])
    saved = base
    if head:
        top = keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(0.5)(base.output))
        saved = keras.Model(base.input, top)
    saved.save(path)
    return keras.Model(base.input, base.get_layer("conv5_block3_out").output)


def _images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- protocol
@pytest.mark.parametrize("name", sorted(RADIMAGENET_FILES))
def test_the_four_backbones_accept_the_shorthand_and_plan_without_the_file(name):
    protocol = parse_protocol(_protocol_text(name))
    assert protocol.backbone.weights == "radimagenet"
    assert plan_cells(protocol, "dataset")


def test_a_backbone_without_a_radimagenet_file_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="RadImageNet weights exist for densenet121, inceptionresnetv2, "
                                            "inceptionv3, resnet50 only, not for mobilenetv2"):
        parse_protocol(_protocol_text("mobilenetv2"))


# ------------------------------------------------------------------------------------------------- files
def test_a_missing_file_says_which_where_from_and_where_to_on_one_line(tmp_path, monkeypatch):
    point_keras_home(monkeypatch, tmp_path)
    with pytest.raises(StudyError) as caught:
        build_backbone("resnet50", "radimagenet", SIZE)
    models = tmp_path / "models"
    assert str(caught.value) == (
        f"RadImageNet weights for ResNet50 are not available: no file {models / 'RadImageNet-ResNet50_notop.h5'}; "
        f"download RadImageNet-ResNet50_notop.h5 from RadImageNet's models folder {RADIMAGENET_DOWNLOAD} "
        f"(linked from https://github.com/BMEII-AI/RadImageNet) and put it in {models}/")


def test_the_shorthand_loads_the_file_from_keras_models_folder(tmp_path, monkeypatch):
    point_keras_home(monkeypatch, tmp_path)
    (tmp_path / "models").mkdir()
    expected = _radimagenet_style_file(tmp_path / "models" / "RadImageNet-ResNet50_notop.h5", head=False)
    x = preprocess("resnet50", _images(), "radimagenet")
    loaded = build_backbone("resnet50", "radimagenet", SIZE)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(expected(x, training=False)),
                               rtol=1e-5, atol=1e-5)


def test_a_radimagenet_file_with_a_fine_tuning_top_loads_as_a_weights_path(tmp_path):
    expected = _radimagenet_style_file(tmp_path / "fine-tuned.h5", head=True)
    x = preprocess("resnet50", _images(), "radimagenet")
    loaded = build_backbone("resnet50", str(tmp_path / "fine-tuned.h5"), SIZE)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(expected(x, training=False)),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ preprocessing
@pytest.mark.parametrize("name", sorted(RADIMAGENET_FILES))
def test_radimagenet_weights_take_radimagenets_preprocessing(name):
    images = _images()
    scripts = ImageDataGenerator(rescale=1.0 / 255, preprocessing_function=imagenet_utils.preprocess_input)
    expected = np.stack([scripts.standardize(image) for image in images.astype(np.float32)])
    assert preprocessing_mode(name, "radimagenet") == "radimagenet"
    np.testing.assert_allclose(preprocess(name, images, "radimagenet"), expected, rtol=1e-5, atol=1e-6)


def test_other_weights_keep_the_backbones_preprocessing():
    images = _images()
    assert preprocessing_mode("densenet121", "imagenet") == "torch"
    assert preprocessing_mode("inceptionv3", "none") == "tf"
    np.testing.assert_array_equal(preprocess("densenet121", images, "imagenet"), preprocess("densenet121", images))
    assert not np.allclose(preprocess("densenet121", images, "radimagenet"), preprocess("densenet121", images))
