"""Labels that survive the split: every class has validation and test images or the data is refused, a number
written two ways is refused, and metrics over a test set that lacks a class say so."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from study.analysis.per_class import unmeasured
from study.cli import main
from study.data.medmnist_table import FLAGS
from study.report.answer import reading_warnings
from study.training.metrics import classification_metrics, operating_metrics

PROTOCOL = """\
name: labels
dataset: {DATASET}
backbone: {name: cnn, weights: none, width: 4}
strategies:
  - {name: scratch}
fractions: [1.0]
seeds: 2
"""


def _protocol(tmp_path: Path, dataset: str, **extra) -> Path:
    path = tmp_path / "labels.yaml"
    text = PROTOCOL.replace("{DATASET}", dataset)
    path.write_text(text + "".join(f"{key}: {value}\n" for key, value in extra.items()))
    return path


def _pngs(folder: Path, count: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        Image.fromarray(np.full((8, 8), i * 7 % 256, dtype=np.uint8)).save(folder / f"{i}.png")


def _validate(protocol: Path, data_dir: Path, capsys) -> tuple[int, str]:
    code = main(["validate", str(protocol), "--data-dir", str(data_dir)])
    return code, capsys.readouterr().err.strip()


def test_a_class_of_one_image_is_refused_naming_it_and_its_counts(tmp_path, capsys):
    for name, count in (("benign", 10), ("malignant", 10), ("normal", 1)):
        _pngs(tmp_path / "images" / name, count)
    protocol = _protocol(tmp_path, "{source: folder, path: images, size: 16}")
    code, err = _validate(protocol, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {protocol}:2: dataset: class 'normal' has 1 image: 1 in training, 0 in "
                          "validation, 0 in test (the fixed split); every class needs images in validation and test"), err
    _pngs(tmp_path / "images" / "normal", 4, start=1)
    assert _validate(protocol, tmp_path, capsys)[0] == 0


def test_each_seeds_own_split_is_checked(tmp_path, capsys):
    for name, count in (("benign", 10), ("normal", 2)):
        _pngs(tmp_path / "images" / name, count)
    protocol = _protocol(tmp_path, "{source: folder, path: images, size: 16, resplit: true}")
    code, err = _validate(protocol, tmp_path, capsys)
    assert code == 2 and "class 'normal' has 2 images: " in err and "(seed 0's split)" in err, err


def test_a_folder_split_whose_test_part_lacks_a_class_is_refused(tmp_path, capsys):
    for part in ("train", "val", "test"):
        for name in ("benign", "normal"):
            if (part, name) != ("test", "normal"):
                _pngs(tmp_path / "images" / part / name, 4)
    code, err = _validate(_protocol(tmp_path, "{source: folder, path: images, size: 16}"), tmp_path, capsys)
    assert code == 2 and ("class 'normal' has 8 images: 4 in training, 4 in validation, 0 in test (the source's "
                          "own split)") in err, err


def test_a_medmnist_file_whose_test_split_lacks_a_class_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = {"train": [0, 1] * 6, "val": [0, 1] * 2, "test": [0, 0, 0]}
    arrays = {}
    for part, values in labels.items():
        arrays[f"{part}_images"] = rng.integers(0, 256, (len(values), 28, 28), dtype=np.uint8)
        arrays[f"{part}_labels"] = np.array(values, dtype=np.uint8)[:, None]
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    code, err = _validate(_protocol(tmp_path, "{source: medmnist, name: breastmnist, size: 28}"), tmp_path, capsys)
    name = FLAGS["breastmnist"].labels[1]
    assert code == 2 and f"class {name!r} has 8 images: 6 in training, 2 in validation, 0 in test" in err, err


def _manifest(tmp_path: Path, labels: list[str]) -> Path:
    _pngs(tmp_path / "images", len(labels))
    rows = [f"images/{i}.png,{label}" for i, label in enumerate(labels)]
    (tmp_path / "list.csv").write_text("\n".join(["path,label", *rows]) + "\n")
    return _protocol(tmp_path, "{source: csv, path: list.csv, size: 16}")


def test_a_label_written_as_another_number_is_refused_naming_both_lines(tmp_path, capsys):
    code, err = _validate(_manifest(tmp_path, ["0"] * 6 + ["1"] * 5 + ["1.0"]), tmp_path, capsys)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.endswith("list.csv:13: label '1.0' is the number of '1' (line 8) written differently; labels are read "
                        "as text, so these would be two classes: write each class one way"), err


@pytest.mark.parametrize("other", ["01", "+1", "1e0"])
def test_other_spellings_of_a_number_are_refused(tmp_path, capsys, other):
    code, err = _validate(_manifest(tmp_path, ["0"] * 6 + ["1"] * 5 + [other]), tmp_path, capsys)
    assert code == 1 and f"label '{other}' is the number of '1'" in err, err


def test_spaces_around_a_label_are_trimmed(tmp_path, capsys):
    assert _validate(_manifest(tmp_path, ["0"] * 6 + ["1"] * 5 + [" 1 "]), tmp_path, capsys) == (0, "")


def test_macro_metrics_of_a_test_set_without_a_class_are_not_defined():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(4)[labels] * 0.9 + 0.025  # a perfect model on 3 of 4 classes
    scores = classification_metrics(labels, probabilities)
    assert scores["accuracy"] == 1.0 and not math.isnan(scores["log_loss"])
    assert all(math.isnan(scores[name]) for name in ("auc", "balanced_accuracy", "f1_macro"))
    operating = operating_metrics(labels, probabilities, "prior", 0.0, np.full(4, 0.25))
    assert operating["accuracy_op"] == 1.0
    assert math.isnan(operating["balanced_accuracy_op"]) and math.isnan(operating["f1_macro_op"])
    assert classification_metrics(np.arange(4), np.eye(4) * 0.9 + 0.025)["auc"] == 1.0


def test_a_stored_cell_tested_without_a_class_is_flagged_in_the_report():
    split = pd.DataFrame({"seed": pd.array([None] * 8, dtype="Int64"), "image_id": [str(i) for i in range(8)],
                          "label": [0, 1, 2, 3, 0, 1, 2, 3], "group": [None] * 8,
                          "split": ["train"] * 4 + ["test", "test", "test", "val"]})
    done = pd.DataFrame({"seed": [0, 1], "auc": [1.0, 1.0], "accuracy": [1.0, 1.0], "f1_macro": [1.0, 1.0],
                         "degenerate": [False, False], "no_ranking": [False, False], "collapsed": [False, False],
                         "n_train": [4, 4], "fraction": [1.0, 1.0]})
    marked = unmeasured(done, split, ["a", "b", "c", "normal"])
    assert list(marked["untested_classes"]) == ["normal", "normal"]
    assert marked["auc"].isna().all() and marked["f1_macro"].isna().all() and (marked["accuracy"] == 1.0).all()
    warnings = reading_warnings(marked, pd.DataFrame({"n_seeds": [2]}), split, False, True)
    assert warnings[0].startswith("Warning: 2 of 2 cells were tested without any image of some class (normal): "
                                  "their AUC, balanced accuracy and F1"), warnings
