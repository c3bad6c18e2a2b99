"""`study init DATA`: a commented protocol written for an image folder, a CSV manifest, a DICOM folder or BUSI, that
loads, validates on its data through the command line, keeps every class in every fraction and says what it found."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import study_command
from helpers.dicom import write_dicom
from PIL import Image

from study.cli import main
from study.data.sources import load_dataset
from study.data.splits import ensure_split, fraction_shortfall
from study.protocol.schema import load_protocol
from study.runner.inputs import seed_splits, training_labels


def write_images(folder: Path, counts: dict[str, int], size: tuple[int, int] = (40, 30)) -> list[Path]:
    """counts[name] small grey PNGs of width x height size in folder/name/."""
    rng = np.random.default_rng(0)
    files = []
    for name, count in counts.items():
        (folder / name).mkdir(parents=True)
        for index in range(count):
            files.append(folder / name / f"{name}-{index}.png")
            Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(files[-1])
    return files


def init(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str]:
    """`study init ARGS` in this process, its results directory in tmp_path: exit code, stdout, stderr."""
    code = main(["init", *args, "--results-dir", str(tmp_path / "results")])
    out, err = capsys.readouterr()
    return code, out, err


def validates(protocol: Path, data_dir: Path) -> None:
    result = study_command("validate", str(protocol), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "every fraction draws from every class of every seed's training split" in result.stdout


def assert_fractions_keep_every_class(protocol_path: Path, data_dir: Path) -> None:
    protocol = load_protocol(protocol_path)
    dataset = ensure_split(load_dataset(protocol.dataset, data_dir), protocol.dataset)
    training = training_labels(dataset, seed_splits(dataset, protocol))
    assert fraction_shortfall(training, dataset.class_names, protocol.fractions) is None
    for labels in training.values():
        for fraction in protocol.fractions:
            assert (np.bincount(labels, minlength=dataset.n_classes) * fraction >= 0.5).all()


def test_an_image_folder_in_the_data_directory_gets_a_protocol_that_validates(tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data / "Lung scans", {"benign": 40, "malignant": 24})
    out = tmp_path / "protocol.yaml"
    code, stdout, stderr = init(tmp_path, capsys, "Lung scans", "--data-dir", str(data), "--out", str(out))
    assert code == 0, stderr
    protocol = load_protocol(out)
    assert protocol.name == "Lung-scans"
    assert (protocol.dataset.source, protocol.dataset.path) == ("folder", "Lung scans")  # read from the data dir
    assert len(protocol.fractions) >= 4 and protocol.fractions[-1] == 1.0
    assert [s.name for s in protocol.strategies] == ["scratch", "frozen", "finetune", "truncate"]
    assert protocol.strategies[2].depth == [1, 2, "all"] and protocol.strategies[3].at == [3, 5]
    assert protocol.claims and all(claim.text for claim in protocol.claims)
    text = out.read_text()
    assert "Classes (images): benign (40), malignant (24); 64 images" in text
    assert "width 40 / 40 / 40; height 30 / 30 / 30. 64 of 64 images are not square" in text
    assert "# images are resized to size x size pixels; a number >= 16 and <= 1024" in text  # the schema's words
    assert "WARNING: no patient ids found" in text
    assert "warning: no patient ids found" in stderr and "both the training and the test split" in stderr
    assert "estimated time" in stdout and "claim transfer-beats-scratch:" in stdout
    assert stdout.strip().endswith(f"next: study run {out} --data-dir {data}")
    validates(out, data)
    assert_fractions_keep_every_class(out, data)


def test_a_csv_manifest_with_a_patient_column_groups_by_it(tmp_path, capsys):
    site = tmp_path / "site"
    files = write_images(site / "images", {"normal": 36, "nodule": 30}, size=(32, 32))
    with open(site / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "Diagnosis", "Patient ID"])
        for index, file in enumerate(files):
            writer.writerow([file.relative_to(site).as_posix(), file.parent.name, f"{file.parent.name}-{index // 3}"])
    out = tmp_path / "site.yaml"
    code, _, stderr = init(tmp_path, capsys, str(site / "manifest.csv"), "--out", str(out))
    assert code == 0, stderr
    dataset = load_protocol(out).dataset
    assert (dataset.source, dataset.path) == ("csv", str(site / "manifest.csv"))  # outside any data directory
    assert (dataset.path_column, dataset.label_column, dataset.group_column) == ("image_path", "Diagnosis",
                                                                                  "Patient ID")
    text = out.read_text()
    assert "Classes (images): nodule (30), normal (36)" in text
    assert "Groups: 22 patients (column 'Patient ID')" in text
    assert "Every image is square" in text
    assert "patient ids" not in stderr
    validates(out, tmp_path)
    assert_fractions_keep_every_class(out, tmp_path)


@pytest.mark.parametrize("named", [True, False])
def test_a_dicom_folder_groups_by_patient_id_when_every_header_has_one(tmp_path, capsys, named):
    rng = np.random.default_rng(0)
    for patient in range(16):
        for index in range(3):
            pixels = rng.integers(0, 4096, (16, 20)).astype(np.uint16)
            write_dicom(tmp_path / "ct" / "ab"[patient % 2] / f"p{patient}_{index}.dcm", pixels,
                        patient=f"p{patient}" if named or patient else "")
    out = tmp_path / "ct.yaml"
    code, _, stderr = init(tmp_path, capsys, "ct", "--data-dir", str(tmp_path), "--out", str(out))
    assert code == 0, stderr
    dataset = load_protocol(out).dataset
    assert (dataset.source, dataset.path) == ("dicom", "ct")
    text = out.read_text()
    assert "width 20 / 20 / 20; height 16 / 16 / 16. 48 of 48 images are not square" in text
    if named:
        assert dataset.group_by == "PatientID"
        assert "Groups: 16 patients (DICOM PatientID)" in text and "patient ids" not in stderr
    else:
        assert dataset.group_by == "none"
        assert "warning: no patient ids found: 3 of 48 DICOM files have no PatientID" in stderr
    validates(out, tmp_path)


def test_a_folder_too_small_for_four_fractions_says_so(tmp_path, capsys):
    write_images(tmp_path / "tiny", {"a": 6, "b": 6, "c": 9})
    out = tmp_path / "tiny.yaml"
    code, _, stderr = init(tmp_path, capsys, str(tmp_path / "tiny"), "--out", str(out))
    assert code == 0, stderr
    protocol = load_protocol(out)
    assert protocol.fractions == [0.25, 0.5, 1.0]
    assert "warning: only 3 of the fractions 0.05, 0.1, 0.25, 0.5, 1 leave every class a training image" in stderr
    assert "needs 4" in stderr
    assert "# WARNING: only 3 of the fractions" in out.read_text()
    validates(out, tmp_path)
    assert_fractions_keep_every_class(out, tmp_path)


def test_a_class_the_split_leaves_without_test_images_is_refused_before_anything_is_written(tmp_path, capsys):
    write_images(tmp_path / "small", {"a": 2, "b": 8})
    out = tmp_path / "small.yaml"
    out.write_text("mine\n")
    code, stdout, stderr = init(tmp_path, capsys, str(tmp_path / "small"), "--out", str(out), "--force")
    assert code == 1 and stdout == "" and len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: image folder {tmp_path / 'small'}: class 'a' has 2 images: ")
    assert out.read_text() == "mine\n"


def test_an_existing_out_file_is_kept_without_force(tmp_path, capsys):
    write_images(tmp_path / "scans", {"a": 20, "b": 20})
    out = tmp_path / "protocol.yaml"
    out.write_text("mine\n")
    code, stdout, stderr = init(tmp_path, capsys, str(tmp_path / "scans"), "--out", str(out))
    assert code == 1 and stdout == ""
    assert stderr == f"error: {out} exists; add --force to overwrite it, or name another file with --out\n"
    assert out.read_text() == "mine\n"
    code, _, stderr = init(tmp_path, capsys, str(tmp_path / "scans"), "--out", str(out), "--force")
    assert code == 0, stderr
    assert load_protocol(out).name == "scans"


def test_the_default_out_is_protocol_yaml_here(tmp_path, capsys, monkeypatch):
    write_images(tmp_path / "scans", {"a": 20, "b": 20})
    monkeypatch.chdir(tmp_path)
    code, _, stderr = init(tmp_path, capsys, "scans")
    assert code == 0, stderr
    assert load_protocol(tmp_path / "protocol.yaml").dataset.path == str(tmp_path / "scans")


@pytest.mark.parametrize("data", ["nosuchmnist", "notes.txt"])
def test_data_that_is_no_folder_csv_or_medmnist_name_is_one_error_line(tmp_path, capsys, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not data\n")
    code, stdout, stderr = init(tmp_path, capsys, data, "--out", str(tmp_path / "p.yaml"))
    assert code == 1 and stdout == ""
    assert stderr.startswith(f"error: {data}: ") and stderr.count("\n") == 1
    assert "MedMNIST" in stderr
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.integration
def test_busi_by_name_in_the_data_directory_validates(busi_dir, tmp_path, capsys):
    out = tmp_path / "busi.yaml"
    code, stdout, stderr = init(tmp_path, capsys, "busi", "--data-dir", str(busi_dir), "--out", str(out))
    assert code == 0, stderr
    protocol = load_protocol(out)
    assert (protocol.dataset.source, protocol.dataset.path) == ("folder", "busi")
    assert protocol.fractions == [0.05, 0.1, 0.25, 0.5, 1.0]
    assert "Classes (images): benign (437), malignant (210), normal (133); 780 images" in out.read_text()
    assert "protocol busi: 105 cells = 5 fractions x 3 seeds x 7 arms" in stdout
    validates(out, busi_dir)
