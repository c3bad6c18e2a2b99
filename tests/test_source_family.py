"""The contract every registered dataset source keeps, run on a small data set made for each in tmp_path: a stable
fingerprint that follows the content, images of the asked size, labels and class names, a split of train/val/test
only, a cache that gives back what was decoded, and its paragraph of `study datasets`.

A new source joins the suite by its registry entry; it needs a maker in MAKERS below, or the suite fails."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import yaml
from helpers.commands import PROJECT, unreachable_url
from helpers.dicom import write_dicom
from helpers.medmnist import fake_npz
from helpers.protocols import protocol_file_data
from PIL import Image
from pydantic import TypeAdapter

from study.core.errors import DataError, ProtocolError
from study.data.dataset import SPLITS
from study.data.medmnist_table import URL_VAR
from study.data.source_registry import SOURCES
from study.data.sources import describe_sources, load_dataset, source_fingerprint
from study.data.splits import source_has_split
from study.protocol.schema import DatasetSpec, parse_protocol

SIZE = 20  # no source's files are this size, so every file source resizes


@dataclass
class Made:
    """A source's dataset section over files made in the data directory, and how to change its content."""

    section: dict
    change: Callable[[], dict]  # changes the content (a file's pixels, a parameter); the section that reads it


def _png(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 30), dtype=np.uint8)).save(path)
    return path


def _medmnist(data: Path) -> Made:
    fake_npz(data / "breastmnist.npz", 28)
    section = {"source": "medmnist", "name": "breastmnist"}

    def change() -> dict:
        fake_npz(data / "breastmnist.npz", 28, seed=1)
        return section

    return Made(section, change)


def _folder(data: Path) -> Made:
    for seed, (split, label) in enumerate((split, label) for split in SPLITS for label in ("cat", "dog")):
        for index in range(3 if split == "train" else 1):
            _png(data / "pets" / split / label / f"{label}{index}.png", seed=10 * seed + index)
    section = {"source": "folder", "path": "pets"}

    def change() -> dict:
        _png(data / "pets" / "train" / "dog" / "dog0.png", seed=99)
        return section

    return Made(section, change)


def _csv(data: Path) -> Made:
    rows = [(f"images/{index}.png", "ab"[index % 2], f"p{index // 2}", SPLITS[index // 4]) for index in range(12)]
    for index in range(12):
        _png(data / "images" / f"{index}.png", seed=index)
    with open(data / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("file", "finding", "patient", "fold"), *rows])
    section = {"source": "csv", "path": "manifest.csv", "path_column": "file", "label_column": "finding",
               "group_column": "patient", "split_column": "fold"}

    def change() -> dict:
        _png(data / "images" / "5.png", seed=99)
        return section

    return Made(section, change)


def _dicom(data: Path) -> Made:
    def scan(path: Path, seed: int, patient: str) -> None:
        pixels = np.random.default_rng(seed).integers(0, 4096, (24, 30)).astype(np.uint16)
        write_dicom(path, pixels, patient=patient)

    for patient in range(6):
        for index in range(2):
            scan(data / "scans" / "ab"[patient % 2] / f"p{patient}_{index}.dcm", 2 * patient + index, f"p{patient}")
    section = {"source": "dicom", "path": "scans"}

    def change() -> dict:
        scan(data / "scans" / "a" / "p0_0.dcm", 99, "p0")
        return section

    return Made(section, change)


def _synthetic(data: Path) -> Made:
    section = {"source": "synthetic", "classes": 3, "per_class": 4, "channels": 3}
    return Made(section, lambda: {**section, "noise": 0.5})


MAKERS: dict[str, Callable[[Path], Made]] = {  # a small data set of each registered source
    "medmnist": _medmnist, "folder": _folder, "csv": _csv, "dicom": _dicom, "synthetic": _synthetic,
}


def spec_of(section: dict):
    """The section validated as the protocol's dataset section, at SIZE px."""
    return TypeAdapter(DatasetSpec).validate_python({"size": SIZE, **section})


@pytest.fixture(params=list(SOURCES))
def made(request, tmp_path, monkeypatch) -> tuple[str, Path, Made]:
    """Each registered source's name, its data directory, and its small data set there."""
    name = request.param
    if name not in MAKERS:
        pytest.fail(f"the registered source {name!r} has no small data set for the conformance suite: add a maker "
                    f"for it to MAKERS in {Path(__file__).name}", pytrace=False)
    monkeypatch.setenv(URL_VAR, unreachable_url())  # a source never downloads here
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    data = tmp_path / "data"
    data.mkdir()
    return name, data, MAKERS[name](data)


# ------------------------------------------------------------------------------------------------ registry
def test_the_protocol_names_every_registered_source_and_no_other():
    sections = get_args(get_args(DatasetSpec)[0])
    names = [name for section in sections for name in get_args(section.model_fields["source"].annotation)]
    assert sorted(names) == sorted(SOURCES)
    assert all(source.name == name for name, source in SOURCES.items())


def test_only_dicom_data_imports_pydicom():
    code = ("import sys\n"
            "from study.data.sources import describe_sources, load_dataset\n"
            "from study.protocol.schema import SyntheticSpec\n"
            "describe_sources(); load_dataset(SyntheticSpec(source='synthetic', per_class=4, size=16), None)\n"
            "assert 'pydicom' not in sys.modules, 'pydicom imported'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------- contract
def test_the_fingerprint_is_stable_and_follows_the_content(made):
    name, data, source = made
    fingerprint = source_fingerprint(spec_of(source.section), data)
    assert len(fingerprint) == 64 and source_fingerprint(spec_of(source.section), data) == fingerprint
    assert source_fingerprint(spec_of(source.change()), data) != fingerprint


def test_load_gives_uint8_images_of_the_asked_size_labels_and_class_names(made):
    name, data, source = made
    spec = spec_of(source.section)
    dataset = load_dataset(spec, data)
    n = len(dataset.labels)
    assert n > 0 and dataset.images.dtype == np.uint8 and dataset.images.shape[:3] == (n, SIZE, SIZE)
    assert dataset.images.shape[3] in (1, 3)
    assert dataset.labels.dtype == np.int64 and set(dataset.labels) == set(range(len(dataset.class_names)))
    assert len(dataset.class_names) >= 2 and all(isinstance(label, str) for label in dataset.class_names)
    assert len(set(dataset.ids)) == n and dataset.fingerprint == source_fingerprint(spec, data)
    assert dataset.groups is None or len(dataset.groups) == n


def test_a_split_of_its_own_holds_train_val_and_test_only(made):
    name, data, source = made
    spec = spec_of(source.section)
    dataset = load_dataset(spec, data)
    official = source_has_split(spec)
    assert official is None or official == (dataset.split is not None)
    if dataset.split is not None:
        assert len(dataset.split) == len(dataset) and set(dataset.split) <= set(SPLITS)


def test_a_split_of_its_own_refuses_a_split_per_seed(made):
    name, data, source = made
    if not source_has_split(spec_of(source.section)):
        return
    tiny = protocol_file_data("tiny") | {"dataset": {**source.section, "resplit": True}}
    with pytest.raises(ProtocolError, match=r"dataset\.resplit: expected false: the source has its own"):
        parse_protocol(yaml.safe_dump(tiny), "tiny.yaml")


def test_a_cached_load_equals_a_fresh_load(made, tmp_path):
    name, data, source = made
    spec = spec_of(source.section)
    fresh = load_dataset(spec, data, tmp_path / "cache")
    cached = load_dataset(spec, data, tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for field in ("images", "labels", "ids", "groups", "split"):
        np.testing.assert_array_equal(getattr(cached, field), getattr(fresh, field))
    assert (cached.class_names, cached.fingerprint, cached.source_file, cached.skipped) == (
        fresh.class_names, fresh.fingerprint, fresh.source_file, fresh.skipped)


def test_a_source_that_reads_files_needs_them_and_one_that_does_not_loads_without_a_data_directory(made, tmp_path):
    name, data, source = made
    spec = spec_of(source.section)
    if SOURCES[name].reads_files:
        (tmp_path / "empty").mkdir()
        with pytest.raises(DataError):
            source_fingerprint(spec, tmp_path / "empty")
    else:
        assert len(load_dataset(spec, None)) == len(load_dataset(spec, data))


def test_study_datasets_describes_it_beside_its_name(made):
    name, data, source = made
    text = describe_sources()
    entry = [paragraph for paragraph in text.split("\n") if paragraph.startswith(name + " ")]
    assert len(entry) == 1 and entry[0][len(name):].strip()
    assert SOURCES[name].description().splitlines()[0] in entry[0]


def test_study_datasets_says_where_data_is_read():
    text = describe_sources()
    assert text.startswith("Data directory: --data-dir DIR, else $STUDY_DATA_DIR")
    assert "<name>.npz" in text and "dataset.on_bad_file: skip" in text
