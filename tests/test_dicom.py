"""The DICOM source on files written with pydicom here (and on pydicom's own sample CT and MR images): pixel values
after rescale, window and inversion; groups by header tag; labels from folders or a manifest; refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import study_command
from helpers.dicom import write_dicom
from helpers.protocols import protocol_file_text
from pydicom.data import get_testdata_file

from study.core.errors import DataError
from study.data.dataset import SPLITS
from study.data.dicom_pixels import dicom_pixels
from study.data.sources import load_dataset, source_fingerprint
from study.data.splits import ensure_split, seed_split
from study.protocol.schema import DicomSpec, parse_protocol
from study.store.results import ResultStore


def _tile(values) -> np.ndarray:
    """A 16 x 16 image repeating values along each row (16 px: the smallest dataset.size, so no resize)."""
    return np.resize(np.asarray(values), (16, 16))


def _patients(root: Path, patients: int = 10, per_patient: int = 3) -> None:
    """Class folders a/ and b/ of 16 px DICOM files, each patient (p0, p1, ...) with several files of one class."""
    rng = np.random.default_rng(0)
    for patient in range(patients):
        label = "ab"[patient % 2]
        for index in range(per_patient):
            pixels = rng.integers(0, 4096, (16, 16)).astype(np.uint16)
            write_dicom(root / label / f"p{patient}_{index}.dcm", pixels, patient=f"p{patient}")


def _spec(**fields) -> DicomSpec:
    return DicomSpec(**{"source": "dicom", "path": "dicom", "size": 16, **fields})


# ---------------------------------------------------------------------------------------------------- pixels
# Window LINEAR (DICOM PS3.3 C.11.2.1.2): with c' = center - 0.5 and w' = width - 1, a value v <= c' - w'/2 is the
# lowest grey, v > c' + w'/2 the highest, else ((v - c') / w' + 0.5) of the range: round(that x 255) here.
# center 100, width 200: c' = 99.5, w' = 199, so v = 0 -> 0, 50 -> 64.07, 100 -> 128.14, 150 -> 192.2, 200 -> 255.
def test_rescale_then_window_give_the_hand_computed_grey_levels(tmp_path):
    stored = _tile([50, 75, 100, 125, 150]).astype(np.uint16)  # 2 x stored - 100 = 0, 50, 100, 150, 200
    path = write_dicom(tmp_path / "dicom" / "a" / "x.dcm", stored, RescaleSlope=2, RescaleIntercept=-100,
                       WindowCenter=100, WindowWidth=200)
    expected = _tile([0, 64, 128, 192, 255]).astype(np.uint8)
    np.testing.assert_array_equal(dicom_pixels(path)[..., 0], expected)
    inside = write_dicom(tmp_path / "inside.dcm", _tile([75, 100, 125]).astype(np.uint16), RescaleSlope=2,
                         RescaleIntercept=-100, WindowCenter=100, WindowWidth=200)
    np.testing.assert_array_equal(dicom_pixels(inside)[..., 0], _tile([64, 128, 192]))  # the window, not the image
    write_dicom(tmp_path / "dicom" / "b" / "y.dcm", stored, patient="p1")
    dataset = load_dataset(_spec(), tmp_path, None)
    np.testing.assert_array_equal(dataset.images[0, ..., 0], expected)


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    stored = _tile([0, 50, 100, 150, 200]).astype(np.uint16)
    path = write_dicom(tmp_path / "x.dcm", stored, photometric="MONOCHROME1", WindowCenter=100, WindowWidth=200)
    np.testing.assert_array_equal(dicom_pixels(path)[..., 0], _tile([255, 191, 127, 63, 0]))


def test_without_a_window_the_image_range_maps_to_0_255(tmp_path):
    stored = _tile([10, 30, 50, 110]).astype(np.uint8)  # (v - 10) / 100 x 255 = 0, 51, 102, 255
    plain = write_dicom(tmp_path / "plain.dcm", stored)
    np.testing.assert_array_equal(dicom_pixels(plain)[..., 0], _tile([0, 51, 102, 255]))
    inverted = write_dicom(tmp_path / "inverted.dcm", stored, photometric="MONOCHROME1")
    np.testing.assert_array_equal(dicom_pixels(inverted)[..., 0], _tile([255, 204, 153, 0]))


def test_pydicoms_sample_ct_and_mr_images_read_with_a_sensible_range(tmp_path):
    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")
    shutil.copyfile(ct, (tmp_path / "ct").mkdir() or tmp_path / "ct" / "CT_small.dcm")
    shutil.copyfile(mr, (tmp_path / "mr").mkdir() or tmp_path / "mr" / "MR_small.dcm")
    ct_grey, mr_grey = dicom_pixels(Path(ct)), dicom_pixels(Path(mr))
    assert ct_grey.shape == (128, 128, 1) and mr_grey.shape == (64, 64, 1)
    assert (ct_grey.min(), ct_grey.max()) == (0, 255)  # rescaled to Hounsfield units, no window: its own range
    assert ct_grey[0, 0, 0] < 60 < ct_grey[64, 64, 0]  # air in the corner is dark, the body in the middle bright
    assert mr_grey.dtype == np.uint8 and mr_grey.std() > 20 and mr_grey.max() > 200  # window 600 / 1600
    dataset = load_dataset(DicomSpec(source="dicom", path=str(tmp_path), size=64), None, None)
    assert dataset.class_names == ["ct", "mr"] and dataset.images.shape == (2, 64, 64, 1)
    assert dataset.groups.tolist() == ["1CT1", "4MR1"]


# ---------------------------------------------------------------------------------------------------- groups
def test_a_patient_never_crosses_the_split(tmp_path):
    _patients(tmp_path / "dicom")
    dataset = load_dataset(_spec(), tmp_path, None)
    assert len(dataset) == 30 and dataset.class_names == ["a", "b"] and dataset.split is None
    assert sorted(set(dataset.groups)) == sorted(f"p{i}" for i in range(10))
    splits = [ensure_split(dataset, _spec()).split] + [
        seed_split(ensure_split(dataset, _spec(resplit=True)), _spec(resplit=True), seed).split for seed in range(3)]
    for split in splits:
        sides = {part: set(dataset.groups[split == part]) for part in SPLITS}
        assert all(sides.values())
        assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"])
        assert not (sides["val"] & sides["test"])
    assert len({tuple(split) for split in splits[1:]}) == 3  # with resplit each seed draws its own


def test_group_by_another_tag_or_none(tmp_path):
    _patients(tmp_path / "dicom", patients=2, per_patient=2)
    by_study = load_dataset(_spec(group_by="StudyInstanceUID"), tmp_path, None)
    assert len(set(by_study.groups)) == 4  # every file of _patients has a study of its own
    assert load_dataset(_spec(group_by="none"), tmp_path, None).groups is None
    assert source_fingerprint(_spec(group_by="none"), tmp_path) != source_fingerprint(_spec(), tmp_path)


def test_a_file_without_the_group_tag_is_named(tmp_path):
    _patients(tmp_path / "dicom", patients=2, per_patient=1)
    write_dicom(tmp_path / "dicom" / "a" / "anonymous.dcm", _tile([1, 2]).astype(np.uint16), patient="")
    with pytest.raises(DataError, match=r"anonymous\.dcm: no PatientID in its header \(dataset\.group_by\)"):
        source_fingerprint(_spec(), tmp_path)


# ---------------------------------------------------------------------------------------------------- labels
def test_labels_from_a_manifest_column(tmp_path):
    _patients(tmp_path / "dicom", patients=4, per_patient=1)
    (tmp_path / "labels.csv").write_text("file,finding\n" + "".join(
        f"dicom/{'ab'[i % 2]}/p{i}_0.dcm,{['benign', 'malignant'][i // 2]}\n" for i in range(4)))
    dataset = load_dataset(_spec(path="labels.csv", path_column="file", label_column="finding"), tmp_path, None)
    assert dataset.class_names == ["benign", "malignant"] and dataset.labels.tolist() == [0, 0, 1, 1]
    assert dataset.ids.tolist() == ["dicom/a/p0_0.dcm", "dicom/b/p1_0.dcm", "dicom/a/p2_0.dcm", "dicom/b/p3_0.dcm"]
    assert dataset.groups.tolist() == ["p0", "p1", "p2", "p3"]


def test_class_folders_take_files_with_the_dicom_marker_and_leave_others(tmp_path):
    _patients(tmp_path / "dicom", patients=2, per_patient=1)
    write_dicom(tmp_path / "dicom" / "a" / "series" / "IM0001", _tile([1, 2]).astype(np.uint16), patient="p9")
    (tmp_path / "dicom" / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "dicom" / "b" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    dataset = load_dataset(_spec(), tmp_path, None)
    assert dataset.ids.tolist() == ["a/p0_0.dcm", "a/series/IM0001", "b/p1_0.dcm"]


# ----------------------------------------------------------------------------------------------- refusals
def test_a_multi_frame_file_is_refused_naming_it(tmp_path):
    _patients(tmp_path / "dicom", patients=2, per_patient=1)
    frames = np.zeros((2, 16, 16), dtype=np.uint16)
    write_dicom(tmp_path / "dicom" / "b" / "cine.dcm", frames, patient="p1", frames=2)
    with pytest.raises(DataError) as caught:
        source_fingerprint(_spec(on_bad_file="skip"), tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'dicom' / 'b' / 'cine.dcm'}: a multi-frame DICOM file (2 frames); the "
                                 "dicom source reads single-frame images: split it into one file per frame, or "
                                 "leave it out")


def test_an_unreadable_file_is_named_or_skipped_and_counted(tmp_path):
    _patients(tmp_path / "dicom", patients=2, per_patient=2)
    (tmp_path / "dicom" / "a" / "broken.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(DataError, match=r"cannot read DICOM file .*broken\.dcm: .*on_bad_file: skip$"):
        load_dataset(_spec(), tmp_path, None)
    dataset = load_dataset(_spec(on_bad_file="skip"), tmp_path, None)
    assert len(dataset) == 4 and len(dataset.skipped) == 1 and "broken.dcm" in dataset.skipped[0]


def test_a_missing_path_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=r"DICOM folder .*scans not found .*relative to the data directory"):
        source_fingerprint(_spec(path="scans"), tmp_path)
    with pytest.raises(DataError, match=r"DICOM manifest .*scans\.csv not found"):
        source_fingerprint(_spec(path="scans.csv"), tmp_path)


def test_the_protocol_knows_the_source_and_its_fields():
    text = protocol_file_text("tiny", seeds=1, epochs=1)
    dataset = "{source: synthetic, classes: 2, per_class: 30, size: 16}"
    protocol = parse_protocol(text.replace(dataset, "{source: dicom, path: scans, group_by: SeriesInstanceUID}"))
    assert protocol.dataset.group_by == "SeriesInstanceUID" and protocol.dataset.resplit is False
    with pytest.raises(Exception, match=r"^tiny\.yaml:2: dataset\.group_by: expected one of .*got 'PatientId' "
                                        r"\(did you mean 'PatientID'\?\)$"):
        parse_protocol(text.replace(dataset, "{source: dicom, path: scans, group_by: PatientId}"), "tiny.yaml")


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_a_dicom_protocol_runs_end_to_end_with_a_split_per_seed(tmp_path):
    _patients(tmp_path / "data" / "dicom", patients=12, per_patient=2)
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(protocol_file_text("tiny", seeds=2, epochs=1).replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: dicom, path: dicom, size: 16, "
        "val_fraction: 0.25, test_fraction: 0.25, resplit: true}"))
    result = study_command("run", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"), "--data-dir", str(tmp_path / "data"), "--jobs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    store = ResultStore(tmp_path / "results", "tiny")
    cells = store.cells()
    assert len(cells) == 8 and set(cells["status"]) == {"done"}
    split = store.split()
    assert sorted(split["seed"].unique()) == [0, 1]
    for _, block in split.groupby("seed"):
        assert (block.groupby("group")["split"].nunique() == 1).all()  # each patient on one side
        assert set(block["split"]) == set(SPLITS)
    assert (tmp_path / "report" / "tiny" / "report.md").is_file()
