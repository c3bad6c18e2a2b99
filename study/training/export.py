"""A trained cell as a model a researcher takes away: from preprocessed images to class probabilities, in the Keras
format, with what applying it needs.

An arm whose lower blocks stay frozen trains a model that starts at the cached output of its last frozen block;
its kept model puts those blocks back in front (the backbone built as the cache built it: same weights, same seed),
so every kept model takes images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import study
from study.plan.cells import Cell
from study.protocol.radimagenet import preprocessing_mode
from study.store.models import MODEL_SUFFIX, KeptModel
from study.training.models.arm_network import ArmModel
from study.training.train import predictor


def image_model(arm_model: ArmModel, cell: Cell):
    """The arm's trained model from preprocessed images to probabilities (its own model when it starts there)."""
    import keras

    from study.training.features import frozen_prefix

    model = arm_model.model
    if arm_model.input_block is None:
        return model
    prefix = frozen_prefix(cell.settings.network, [arm_model.input_block], cell.seed)
    prefix.trainable = False
    size = cell.settings.dataset.size
    images = keras.Input((size, size, 3), name="image")
    return keras.Model(images, model(prefix(images)), name=model.name)


REPRODUCED = 1e-4  # the largest difference in a test probability for a kept model to be the cell's


def keras_file(model) -> bytes:
    """The model saved in the Keras format (without optimizer state), as the bytes of its file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"model{MODEL_SUFFIX}"
        model.save(path)
        return path.read_bytes()


def kept_model(cell: Cell, arm_model: ArmModel, class_names: list[str], row: dict, test_images: np.ndarray,
               test_probabilities: np.ndarray) -> KeptModel:
    """The cell's trained model and its description. test_images (preprocessed) and the cell's probabilities for
    them check that the model from images gives what the cell measured: the largest difference is stored."""
    model = image_model(arm_model, cell)
    difference = float(np.abs(predictor(model)(test_images) - test_probabilities).max()) if len(test_images) else 0.0
    if difference > REPRODUCED:
        raise ValueError(f"the model from images differs from what the cell measured by {difference:.2g} in a test "
                         f"probability (more than {REPRODUCED:g}), so it is not the cell's model")
    return KeptModel(cell.run_id, keras_file(model), model_description(cell, class_names, row, difference))


def model_description(cell: Cell, class_names: list[str], row: dict, difference: float) -> dict[str, Any]:
    """What applying a kept model needs (input size, resize filter, backbone and its preprocessing, class names) and
    which cell it is."""
    dataset, backbone = cell.settings.dataset, cell.settings.backbone
    return {
        "run_id": cell.run_id,
        "protocol": cell.protocol,
        "arm": cell.arm.label,
        "fraction": cell.fraction,
        "seed": cell.seed,
        "backbone": backbone.name,
        "weights": backbone.weights,
        "size": dataset.size,
        "resize": dataset.resize,
        "preprocessing": preprocessing_mode(backbone.name, backbone.weights),
        "input": (f"N x {dataset.size} x {dataset.size} x 3 float32: images resized with the resize filter, "
                  "grey repeated to 3 channels, then the backbone's preprocessing (study.training.models.backbones."
                  "preprocess)"),
        "class_names": list(class_names),
        "monitor": row["monitor"],
        "monitor_value": row["monitor_value"],
        "test_auc": row["auc"],
        "test_accuracy": row["accuracy"],
        "test_probability_difference": difference,
        "trained_again": False,
        "study_version": study.__version__,
        "keras_version": row["keras_version"],
    }
