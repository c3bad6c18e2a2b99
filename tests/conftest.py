"""Shared fixtures: where the real datasets and ImageNet weights are.

Real data and weights come from $STUDY_DATA_DIR and $KERAS_HOME when set, else from ../shared beside the project
where it exists, else from the harness's own MedMNIST download and Keras' own weight download; with none of these, the
tests that need them fail with one message saying what to set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers.commands import PROJECT
from helpers.keras_home import point_keras_home

SHARED = PROJECT.parent / "shared"  # the offline material beside the project (CI has it), when present
KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"  # where Keras downloads them
WEIGHT_FILES = {  # the ImageNet weight files the tests load, by name, with their folder in KERAS_WEIGHTS
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5": "mobilenet_v2",
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5": "mobilenet_v2",
    "mobilenet_2_5_128_tf_no_top.h5": "mobilenet",
}


def _offline(variable: str, shared: Path) -> Path | None:
    """The folder in $variable when it is set, else the one in ../shared when it exists, else None."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    return shared if shared.is_dir() else None


@pytest.fixture(scope="session")
def breastmnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding breastmnist.npz alone (every size then resizes its 28 px images): the file in
    $STUDY_DATA_DIR, else in ../shared/data, else the harness's own download (into the data directory, or without
    one into its user cache)."""
    from study.core.errors import DataError
    from study.data.medmnist_files import fetch_medmnist

    try:
        found = fetch_medmnist("breastmnist", 28, _offline("STUDY_DATA_DIR", SHARED / "data"))
    except DataError as exc:
        pytest.fail(f"BreastMNIST for the tests: {exc}", pytrace=False)
    folder = tmp_path_factory.mktemp("breastmnist")
    shutil.copyfile(found.path, folder / "breastmnist.npz")
    return folder


@pytest.fixture(scope="session")
def busi_dir() -> Path:
    """A data directory holding busi/ (BUSI's benign, malignant and normal folders): $STUDY_DATA_DIR, else
    ../shared/data. BUSI has no download."""
    folder = _offline("STUDY_DATA_DIR", SHARED / "data")
    if folder is None or not (folder / "busi").is_dir():
        where = f"{folder / 'busi'} does not exist" if folder else f"STUDY_DATA_DIR is not set and {SHARED} is absent"
        pytest.fail(f"BUSI images for the tests: {where}; set STUDY_DATA_DIR to a folder holding busi/ (one folder "
                    "of PNG images per class: benign, malignant, normal)", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def imagenet_keras_home(tmp_path_factory: pytest.TempPathFactory):
    """A writable Keras cache for the session holding the ImageNet weight files the tests load, copied from
    $KERAS_HOME/models, else ../shared/weights/keras/models; files found in neither are downloaded by Keras."""
    source = _offline("KERAS_HOME", SHARED / "weights" / "keras")
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    for name in WEIGHT_FILES:
        if source is not None and (source / "models" / name).is_file():
            shutil.copyfile(source / "models" / name, home / "models" / name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_keras_home(monkeypatch, home)
        _download_missing_weights(home, source)
        yield home


def _download_missing_weights(home: Path, source: Path | None) -> None:
    """Keras' own download of the weight files home lacks; without it, one message saying what to set."""
    import keras

    for name, folder in WEIGHT_FILES.items():
        if (home / "models" / name).is_file():
            continue
        try:
            keras.utils.get_file(name, f"{KERAS_WEIGHTS}{folder}/{name}", cache_subdir="models")
        except Exception as exc:  # Keras wraps every download error in a plain Exception
            where = f"not in {source / 'models'}" if source else f"not found (KERAS_HOME is not set and {SHARED} is absent)"
            pytest.fail(f"ImageNet weights for the tests: {name} {where}, and Keras could not download it "
                        f"({type(exc).__name__}); set KERAS_HOME to a Keras cache whose models/ holds "
                        f"{', '.join(WEIGHT_FILES)}", pytrace=False)
