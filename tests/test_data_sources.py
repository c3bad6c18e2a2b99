"""Dataset sources on the real shared files (BreastMNIST, BUSI) and on small folders made in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from study.core.errors import DataError
from study.data.dataset import split_indices
from study.data.sources import describe_sources, load_dataset, resolve_data_dir, source_fingerprint
from study.data.splits import ensure_split
from study.protocol.schema import CsvSpec, FolderSpec, MedmnistSpec, SyntheticSpec

BUSI_FILES = ["benign/benign (1).png", "benign/benign (10).png", "malignant/malignant (1).png",
              "malignant/malignant (2).png", "normal/normal (1).png", "normal/normal (2).png"]


@pytest.fixture(scope="module")
def busi(busi_dir):
    return load_dataset(FolderSpec(source="folder", path="busi", size=32), busi_dir, None)


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _small_folder(root: Path) -> Path:
    for label in ("cat", "dog"):
        for i in range(3):
            _png(root / label / f"{label} ({i}).png", _noise((20, 24), seed=i + 10 * len(label)))
    return root


# ------------------------------------------------------------------------------------------- data directory
def test_data_dir_flag_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("STUDY_DATA_DIR")
    assert resolve_data_dir(None) is None


# ------------------------------------------------------------------------------------------------- medmnist
@pytest.mark.integration
def test_breastmnist_keeps_the_official_split(breastmnist_dir):
    dataset = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=28), breastmnist_dir, None)
    raw = np.load(breastmnist_dir / "breastmnist.npz")
    assert {name: len(rows) for name, rows in split_indices(dataset).items()} == {"train": 546, "val": 78, "test": 156}
    assert dataset.class_names == ["malignant", "normal, benign"]
    assert dataset.images.shape == (780, 28, 28, 1) and dataset.images.dtype == np.uint8
    np.testing.assert_array_equal(dataset.images[:546, ..., 0], raw["train_images"])
    np.testing.assert_array_equal(dataset.labels[546:624], raw["val_labels"].ravel())
    assert dataset.ids[0] == "train/0" and dataset.ids[-1] == "test/155"
    assert ensure_split(dataset, MedmnistSpec(source="medmnist", name="breastmnist")) is dataset


@pytest.mark.integration
def test_breastmnist_is_resized_to_the_protocol_size(breastmnist_dir):
    dataset = load_dataset(MedmnistSpec(source="medmnist", name="BreastMNIST", size=64), breastmnist_dir, None)
    assert dataset.images.shape == (780, 64, 64, 1)
    assert np.bincount(dataset.labels).tolist() == [210, 570]


# --------------------------------------------------------------------------------------------------- folder
@pytest.mark.integration
def test_busi_folder_loads_every_image_with_its_class(busi):
    assert len(busi) == 780
    assert busi.class_names == ["benign", "malignant", "normal"]
    assert np.bincount(busi.labels).tolist() == [437, 210, 133]
    assert "benign/benign (1).png" in busi.ids and "normal/normal (133).png" in busi.ids
    assert busi.split is None and busi.groups is None
    assert busi.images.shape == (780, 32, 32, 3)  # 16 BUSI files carry colour marks, so all become RGB


@pytest.mark.integration
def test_busi_gets_a_stratified_split(busi):
    parts = split_indices(ensure_split(busi, FolderSpec(source="folder", path="busi")))
    assert [len(parts[name]) for name in ("train", "val", "test")] == [506, 118, 156]
    assert np.bincount(busi.labels[parts["test"]]).tolist() == [87, 42, 27]


def test_folder_with_split_folders_uses_them(tmp_path):
    for split in ("train", "Test"):
        _small_folder(tmp_path / "set" / split)
    dataset = load_dataset(FolderSpec(source="folder", path="set", size=16), tmp_path, None)
    assert sorted(set(dataset.split)) == ["test", "train"] and "Test/cat/cat (0).png" in dataset.ids
    split = ensure_split(dataset, FolderSpec(source="folder", path="set")).split
    assert (split[dataset.split == "test"] == "test").all() and set(split) == {"train", "val", "test"}


def test_image_modes_are_normalised(tmp_path):
    root = tmp_path / "odd"
    ramp = np.tile(np.linspace(1000, 5000, 16), (16, 1)).astype(np.uint16)
    _png(root / "a" / "sixteen bit.png", ramp)
    rgba = np.dstack([_noise((16, 16, 3)), np.full((16, 16), 128, np.uint8)])
    _png(root / "a" / "rgba.png", rgba)
    _png(root / "b" / "grey.png", _noise((16, 16)))
    (root / "b" / "notes.txt").write_text("not an image")
    (root / "b" / ".hidden.png").write_bytes(b"junk")
    dataset = load_dataset(FolderSpec(source="folder", path=str(root), size=16), None, None)
    assert dataset.ids.tolist() == ["a/rgba.png", "a/sixteen bit.png", "b/grey.png"]
    assert dataset.images.shape == (3, 16, 16, 3)  # one colour image makes every image RGB
    np.testing.assert_array_equal(dataset.images[0], rgba[..., :3])
    sixteen = dataset.images[1]
    assert (sixteen[..., 0] == sixteen[..., 2]).all() and sixteen.min() == 0 and sixteen.max() == 255


def test_grey_stored_as_rgb_becomes_one_channel(tmp_path):
    for label in ("x", "y"):
        _png(tmp_path / label / "img.png", np.repeat(_noise((16, 16, 1)), 3, axis=2))
    assert load_dataset(FolderSpec(source="folder", path=str(tmp_path), size=16), None, None).channels == 1


def test_segmentation_masks_beside_the_images_are_skipped(tmp_path):
    _small_folder(tmp_path)
    _png(tmp_path / "cat" / "cat (0)_mask.png", np.zeros((20, 24), np.uint8))
    _png(tmp_path / "dog" / "dog (1)_mask.png", np.zeros((20, 24), np.uint8))
    _png(tmp_path / "dog" / "dog (1)_mask_1.png", np.zeros((20, 24), np.uint8))
    _png(tmp_path / "dog" / "masked dog.png", _noise((20, 24)))
    spec = FolderSpec(source="folder", path=str(tmp_path), size=16)
    dataset = load_dataset(spec, None, None)
    assert len(dataset) == 7 and not any("_mask" in name for name in dataset.ids)
    assert "dog/masked dog.png" in dataset.ids
    for mask in tmp_path.rglob("*_mask*.png"):
        mask.unlink()
    assert source_fingerprint(spec, None) == dataset.fingerprint  # the masks were never read
    assert "_mask" in describe_sources()


def test_truncated_image_is_named(tmp_path):
    _small_folder(tmp_path)
    broken = _png(tmp_path / "dog" / "broken (1).png", _noise((64, 64)))
    broken.write_bytes(broken.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cannot read image .*broken \(1\)\.png"):
        load_dataset(FolderSpec(source="folder", path=".", size=16), tmp_path, None)


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_bad_files_fail_naming_them_or_are_skipped_and_counted(tmp_path, damage):
    _small_folder(tmp_path / "set")
    bad = _png(tmp_path / "set" / "dog" / "bad (2).png", _noise((64, 64)))
    bad.write_bytes({"truncated": bad.read_bytes()[:300], "empty": b"", "text": b"not a png at all"}[damage])
    with pytest.raises(DataError, match=r"cannot read image .*bad \(2\)\.png.*set dataset\.on_bad_file: skip"):
        load_dataset(FolderSpec(source="folder", path="set", size=16), tmp_path, None)
    skipping = FolderSpec(source="folder", path="set", size=16, on_bad_file="skip")
    dataset = load_dataset(skipping, tmp_path, tmp_path / "cache")
    assert len(dataset) == 6 and "dog/bad (2).png" not in dataset.ids
    assert len(dataset.skipped) == 1 and "bad (2).png" in dataset.skipped[0]
    cached = load_dataset(skipping, tmp_path, tmp_path / "cache")
    assert cached.skipped == dataset.skipped
    with pytest.raises(DataError, match=r"bad \(2\)\.png.*set dataset\.on_bad_file: skip"):  # the cache does not hide it
        load_dataset(FolderSpec(source="folder", path="set", size=16), tmp_path, tmp_path / "cache")


def test_a_file_without_read_permission_is_named_or_skipped(tmp_path, monkeypatch):
    import builtins

    _small_folder(tmp_path)
    locked = _png(tmp_path / "cat" / "locked.png", _noise((20, 24)))
    real_open = builtins.open

    def no_permission(file, *args, **kwargs):  # chmod 000 does not stop root, so refuse the file here
        if Path(str(file)) == locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_permission)
    with pytest.raises(DataError, match=r"cannot read .*locked\.png: Permission denied"):
        load_dataset(FolderSpec(source="folder", path=".", size=16), tmp_path, None)
    dataset = load_dataset(FolderSpec(source="folder", path=".", size=16, on_bad_file="skip"), tmp_path, None)
    assert len(dataset) == 6 and "locked.png" in dataset.skipped[0] and "Permission denied" in dataset.skipped[0]


def test_a_class_with_no_readable_image_is_named(tmp_path):
    _small_folder(tmp_path)
    for path in (tmp_path / "dog").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DataError, match=r"class 'dog' has no readable image left after skipping 3 bad files"):
        load_dataset(FolderSpec(source="folder", path=".", size=16, on_bad_file="skip"), tmp_path, None)


def test_mixed_modes_depths_and_sizes_become_one_array(tmp_path):
    images = {
        "palette (1).png": Image.fromarray(_noise((30, 10, 3))).convert("P"),
        "grey alpha.png": Image.fromarray(_noise((12, 12, 2)), "LA"),
        "one bit.png": Image.fromarray(_noise((40, 40)) > 128),
        "cmyk.jpg": Image.fromarray(_noise((16, 20, 3))).convert("CMYK"),
        "sixteen.tif": Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 13),
        "float.tif": Image.fromarray(np.linspace(-1, 1, 81, dtype=np.float32).reshape(9, 9)),
    }
    for index, (name, image) in enumerate(images.items()):
        folder = tmp_path / ("a" if index % 2 else "b")
        folder.mkdir(exist_ok=True)
        image.save(folder / name)
    dataset = load_dataset(FolderSpec(source="folder", path=str(tmp_path), size=16), None, None)
    assert dataset.images.shape == (6, 16, 16, 3) and dataset.images.dtype == np.uint8
    assert dataset.skipped == ()


def test_empty_class_folder_is_named(tmp_path):
    _small_folder(tmp_path)
    (tmp_path / "empty class").mkdir()
    with pytest.raises(DataError, match=r"class folder .*empty class holds no images"):
        load_dataset(FolderSpec(source="folder", path=str(tmp_path)), None, None)


def test_missing_folder_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=r"nothere not found .*relative to the data directory .*--data-dir"):
        source_fingerprint(FolderSpec(source="folder", path="nothere"), tmp_path)


# ------------------------------------------------------------------------------------------------------ csv
def _manifest(busi_dir: Path, tmp_path: Path, rows: list[str], header: str = "file,diagnosis,patient,fold") -> Path:
    for relative in BUSI_FILES:
        (tmp_path / "images" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(busi_dir / "busi" / relative, tmp_path / "images" / relative)
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows() -> list[str]:
    folds = ["train", "Train", "val", "test", "TRAIN", "test"]
    return [f"images/{relative},{relative.split('/')[0]},p{i // 2},{fold}" for i, (relative, fold)
            in enumerate(zip(BUSI_FILES, folds))]


def _csv_spec(**extra) -> CsvSpec:
    return CsvSpec(source="csv", path="manifest.csv", path_column="file", label_column="diagnosis", size=16, **extra)


@pytest.mark.integration
def test_csv_manifest_with_groups_and_split(busi_dir, tmp_path):
    _manifest(busi_dir, tmp_path, _rows())
    dataset = load_dataset(_csv_spec(group_column="patient", split_column="fold"), tmp_path, None)
    assert dataset.class_names == ["benign", "malignant", "normal"]
    assert dataset.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert dataset.groups.tolist() == ["p0", "p0", "p1", "p1", "p2", "p2"]
    assert dataset.split.tolist() == ["train", "train", "val", "test", "train", "test"]
    assert dataset.ids[0] == "images/benign/benign (1).png"


@pytest.mark.integration
def test_csv_missing_image_names_the_row_and_file(busi_dir, tmp_path):
    rows = _rows()
    rows[2] = "images/malignant/gone (9).png,malignant,p1,train"
    _manifest(busi_dir, tmp_path, rows)
    with pytest.raises(DataError, match=r"manifest\.csv:4: image file 'images/malignant/gone \(9\)\.png' not found"):
        load_dataset(_csv_spec(), tmp_path, None)


@pytest.mark.integration
def test_csv_missing_image_is_skipped_and_counted_when_asked(busi_dir, tmp_path):
    rows = _rows()
    rows[2] = "images/malignant/gone (9).png,malignant,p1,train"
    _manifest(busi_dir, tmp_path, rows)
    dataset = load_dataset(_csv_spec(on_bad_file="skip"), tmp_path, None)
    assert len(dataset) == 5 and dataset.skipped[0].startswith(f"{tmp_path / 'manifest.csv'}:4: image file")


@pytest.mark.integration
def test_csv_missing_column_lists_the_columns(busi_dir, tmp_path):
    _manifest(busi_dir, tmp_path, _rows())
    with pytest.raises(DataError, match=r"no column 'subject' .*group_column.*columns found: file, diagnosis"):
        load_dataset(_csv_spec(group_column="subject"), tmp_path, None)


@pytest.mark.integration
def test_csv_unknown_split_value_names_the_row(busi_dir, tmp_path):
    rows = _rows()
    rows[4] = rows[4].replace("TRAIN", "holdout")
    _manifest(busi_dir, tmp_path, rows)
    with pytest.raises(DataError, match=r"manifest\.csv:6: fold is 'holdout'; expected train, val or test"):
        load_dataset(_csv_spec(split_column="fold"), tmp_path, None)


@pytest.mark.integration
def test_csv_integer_labels_sort_as_numbers(busi_dir, tmp_path):
    rows = [f"images/{relative},{[10, 2][i % 2]},p{i},train" for i, relative in enumerate(BUSI_FILES)]
    _manifest(busi_dir, tmp_path, rows)
    dataset = load_dataset(_csv_spec(), tmp_path, None)
    assert dataset.class_names == ["2", "10"] and dataset.labels.tolist() == [1, 0, 1, 0, 1, 0]


# ------------------------------------------------------------------------------------------------ synthetic
def test_synthetic_draws_its_classes_evenly_and_keeps_a_class_s_images_as_others_change():
    spec = SyntheticSpec(source="synthetic", classes=3, per_class=10, channels=3, size=32)
    first, second = load_dataset(spec, None, None), load_dataset(spec, None, None)
    assert first.images.tobytes() == second.images.tobytes()
    assert first.images.shape == (30, 32, 32, 3) and np.bincount(first.labels).tolist() == [10, 10, 10]
    assert first.split is None and first.ids[5] == "synthetic/5"
    assert first.images.std() > 10  # not blank
    more = load_dataset(SyntheticSpec(source="synthetic", classes=3, per_class=12, channels=3, size=32), None, None)
    np.testing.assert_array_equal(more.images[:10], first.images[:10])  # a class's images stay put


# ----------------------------------------------------------------------------------- fingerprint and cache
def test_fingerprint_follows_content_not_location_or_size(tmp_path):
    one = _small_folder(tmp_path / "one")
    two = tmp_path / "elsewhere" / "two"
    shutil.copytree(one, two)
    fingerprint = source_fingerprint(FolderSpec(source="folder", path="one"), tmp_path)
    assert source_fingerprint(FolderSpec(source="folder", path=str(two), size=128), None) == fingerprint
    target = two / "dog" / "dog (1).png"
    _png(target, _noise((20, 24), seed=99))
    changed = source_fingerprint(FolderSpec(source="folder", path=str(two)), None)
    target.rename(two / "dog" / "dog (7).png")
    renamed = source_fingerprint(FolderSpec(source="folder", path=str(two)), None)
    assert len({fingerprint, changed, renamed}) == 3


def test_cache_hit_returns_equal_arrays_without_decoding(tmp_path, monkeypatch):
    _small_folder(tmp_path / "set")
    spec = FolderSpec(source="folder", path="set", size=16)
    fresh = load_dataset(spec, tmp_path, tmp_path / "cache")
    cached_files = list((tmp_path / "cache").iterdir())
    assert [path.name for path in cached_files] == [f"images-{fresh.fingerprint}-16px-bilinear.npz"]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image despite the cache")

    monkeypatch.setattr(Image, "open", no_decoding)
    cached = load_dataset(spec, tmp_path, tmp_path / "cache")
    for field in ("images", "labels", "ids"):
        np.testing.assert_array_equal(getattr(cached, field), getattr(fresh, field))
    assert cached.class_names == fresh.class_names and cached.fingerprint == fresh.fingerprint
    assert cached.split is None and cached.groups is None


def test_unreadable_cache_is_rebuilt(tmp_path, caplog):
    spec = SyntheticSpec(source="synthetic", per_class=5, size=16)
    fingerprint = source_fingerprint(spec, None)
    (tmp_path / f"images-{fingerprint}-16px-bilinear.npz").write_bytes(b"torn")
    dataset = load_dataset(spec, None, tmp_path)
    assert len(dataset) == 10 and "unreadable image cache" in caplog.text
    assert len(load_dataset(spec, None, tmp_path)) == 10


@pytest.mark.integration
def test_resize_filter_is_the_protocols_choice(breastmnist_dir):
    from typing import get_args

    from study.data.images import FILTERS
    from study.protocol.schema import DatasetBase

    assert set(get_args(DatasetBase.model_fields["resize"].annotation)) == set(FILTERS)
    assert DatasetBase.model_fields["resize"].default == "bilinear"
    raw = np.load(breastmnist_dir / "breastmnist.npz")["train_images"][:4]
    nearest = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=56, resize="nearest"),
                           breastmnist_dir, None)
    np.testing.assert_array_equal(nearest.images[:4, ::2, ::2, 0], raw)  # 28 -> 56 px: each pixel doubled
    bilinear = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=56), breastmnist_dir, None)
    assert not np.array_equal(bilinear.images, nearest.images)
