"""Kept models: `run --keep-models best|all` keeps the right trained models, crash-safe and resumable, and `predict`
applied to the test images written as PNG files gives back each kept cell's stored test predictions."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.commands import PROJECT, study_command
from helpers.protocols import PROTOCOLS
from PIL import Image

from study.analysis.summaries import best_cell
from study.cli import main
from study.data.sources import load_dataset
from study.protocol.schema import load_protocol
from study.store.models import KeptModel
from study.store.results import ResultStore

CLASSES = ["class_0", "class_1", "class_2"]  # the synthetic source's class names (keep_models.yaml: 3 classes)


def dirs(root: Path) -> list[str]:
    return ["--results-dir", str(root / "results"), "--report-dir", str(root / "report")]


def write_protocol(root: Path, extra: str = "") -> Path:
    path = root / "keep_models.yaml"
    path.write_text((PROTOCOLS / "keep_models.yaml").read_text() + extra)
    return path


def run(protocol: Path, *flags: str) -> subprocess.CompletedProcess:
    result = study_command("run", str(protocol), *dirs(protocol.parent), "--jobs", "2", *flags)
    assert result.returncode == 0, result.stderr
    return result


def best_per_arm_and_fraction(store: ResultStore) -> set[str]:
    """The run id of the cell with the best validation value of each arm and fraction, as the report picks it."""
    cells = store.cells()
    return {best_cell(cells, [arm], fraction)["run_id"] for arm, fraction in cells[["arm", "fraction"]].values}


def stamps(paths) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in paths}


def write_test_images(protocol: Path, store: ResultStore, folder: Path) -> dict[str, str]:
    """The protocol's test images as PNG files in folder; file path -> image id."""
    dataset = load_dataset(load_protocol(protocol).dataset, None)
    position = {image_id: index for index, image_id in enumerate(dataset.ids)}
    split = store.split()
    folder.mkdir(parents=True)
    written = {}
    for image_id in split.loc[split["split"] == "test", "image_id"]:
        path = folder / f"{image_id.replace('/', '_')}.png"
        Image.fromarray(dataset.images[position[image_id]][..., 0]).save(path)  # grey, one channel
        written[str(path)] = image_id
    return written


@pytest.fixture(scope="module")
def kept_best(tmp_path_factory) -> tuple[Path, ResultStore]:
    """keep_models.yaml run once with --keep-models best: its protocol file and store."""
    protocol = write_protocol(tmp_path_factory.mktemp("best"))
    result = run(protocol, "--keep-models", "best")
    assert "6 models kept in" in result.stdout
    return protocol, ResultStore(protocol.parent / "results", "keep")


@pytest.mark.slow
def test_best_keeps_the_best_cell_of_each_arm_and_fraction_by_validation(kept_best):
    _, store = kept_best
    cells = store.cells()
    assert len(cells) == 12 and set(cells["status"]) == {"done"}
    kept = store.models.kept()
    assert kept == best_per_arm_and_fraction(store) and len(kept) == 6  # 3 arms x 2 fractions
    assert sorted(path.name for path in store.models.folder.iterdir()) == sorted(
        f"{run_id}{suffix}" for run_id in kept for suffix in (".keras", ".json"))
    for run_id in kept:
        info = json.loads(store.models.info_path(run_id).read_text())
        row = cells.set_index("run_id").loc[run_id]
        assert (info["arm"], info["fraction"], info["seed"]) == (row["arm"], row["fraction"], row["seed"])
        assert info["monitor_value"] == row["monitor_value"] and info["class_names"] == CLASSES
        described = (info["size"], info["resize"], info["backbone"], info["preprocessing"])
        assert described == (16, "bilinear", "cnn", "unit")


@pytest.mark.slow
def test_predict_on_png_files_reproduces_each_kept_cells_stored_test_predictions(kept_best, tmp_path):
    protocol, store = kept_best
    cells = store.cells().set_index("run_id")
    # frozen and finetune(depth=1) train on cached frozen-block outputs: their kept models put those blocks back
    cached = {arm for arm, block in zip(cells["arm"], cells["cached_input_block"]) if pd.notna(block)}
    assert cached == {"frozen", "finetune(depth=1)"}
    images = write_test_images(protocol, store, tmp_path / "images")
    for run_id in store.models.kept():
        out = tmp_path / f"{run_id}.csv"
        assert main(["predict", str(store.models.keras_path(run_id)), str(tmp_path / "images"), "--out", str(out)]) == 0
        predicted = pd.read_csv(out)
        assert list(predicted.columns) == ["path", *CLASSES, "predicted"] and len(predicted) == len(images)
        stored = store.predictions(run_id).set_index("image_id").loc[predicted["path"].map(images)]
        difference = np.abs(predicted[CLASSES].to_numpy() - stored[[f"prob_{k}" for k in range(3)]].to_numpy())
        assert difference.max() < 1e-5, (cells.loc[run_id, "arm"], difference.max())
        assert predicted["predicted"].tolist() == [CLASSES[k] for k in stored["predicted"]]


@pytest.mark.slow
def test_all_keeps_every_cell_best_keeps_one_and_cells_stored_without_a_model_are_trained_again(tmp_path):
    protocol = write_protocol(tmp_path)
    store = ResultStore(tmp_path / "results", "keep")
    run(protocol)
    assert store.models.kept() == set()
    rows = stamps(store.cells_dir.iterdir())

    best = run(protocol, "--keep-models", "best")
    assert "12 stored, 0 to run" in best.stdout
    assert "training 6 cells stored without their model again" in best.stdout
    assert store.models.kept() == best_per_arm_and_fraction(store)
    for run_id in store.models.kept():
        info = json.loads(store.models.info_path(run_id).read_text())
        assert info["trained_again"] and info["stored_probability_difference"] < 1e-6
    best_models = stamps(store.models.keras_path(run_id) for run_id in store.models.kept())

    every = run(protocol, "--keep-models", "all")
    assert "training 6 cells stored without their model again" in every.stdout
    assert store.models.kept() == set(store.cells()["run_id"]) and "12 models kept" in every.stdout

    # run.keep_models in the protocol, without the flag: back to the best, whose files stay as they were
    protocol.write_text(protocol.read_text() + "run: {keep_models: best}\n")
    again = run(protocol)
    assert "training" not in again.stdout and "6 models kept" in again.stdout
    assert store.models.kept() == best_per_arm_and_fraction(store)
    assert stamps(store.models.keras_path(run_id) for run_id in store.models.kept()) == best_models
    assert stamps(store.cells_dir.iterdir()) == rows  # stored results never change


@pytest.mark.integration
def test_a_run_killed_mid_sweep_resumes_without_losing_or_duplicating_kept_models(tmp_path):
    protocol = write_protocol(tmp_path)
    store = ResultStore(tmp_path / "results", "keep")
    command = [sys.executable, "-m", "study", "run", str(protocol), *dirs(tmp_path), "--jobs", "1", "--keep-models",
               "best"]
    process = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(store.cells_dir.glob("*.parquet"))) < 4:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored = {path.stem for path in store.cells_dir.glob("*.parquet")}
    assert 4 <= len(stored) < 12, "the kill should land mid-sweep"
    kept_before = stamps(store.models.keras_path(run_id) for run_id in store.models.kept())

    resumed = run(protocol, "--keep-models", "best")
    # every cell stored before the kill had its model kept, or a better cell's: none is trained again
    assert "training" not in resumed.stdout and "6 models kept" in resumed.stdout
    cells = store.cells()
    assert len(cells) == 12 and cells["run_id"].is_unique
    kept = store.models.kept()
    assert kept == best_per_arm_and_fraction(store)
    assert sorted(path.name for path in store.models.folder.iterdir()) == sorted(
        f"{run_id}{suffix}" for run_id in kept for suffix in (".keras", ".json"))  # no leftover, no duplicate
    still_kept = {name: stamp for name, stamp in kept_before.items() if Path(name).stem in kept}
    assert stamps(store.models.keras_path(Path(name).stem) for name in still_kept) == still_kept


def test_a_model_is_kept_once_its_description_is_written_and_leftovers_of_a_kill_are_removed(tmp_path):
    store = ResultStore(tmp_path, "keep")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as keras_file:  # a .keras file is a zip archive
        keras_file.writestr("config.json", "{}")
    store.models.put(KeptModel("whole", archive.getvalue(), {"run_id": "whole"}))
    store.models.put(KeptModel("damaged", b"not a zip archive", {"run_id": "damaged"}))
    store.models.keras_path("torn").write_bytes(b"killed before its description")
    (store.models.folder / ".whole.keras.0123456789ab.tmp").write_bytes(b"killed mid-write")
    assert store.models.kept() == {"whole"}  # a damaged model is not kept: the next run trains it again
    assert store.remove_temporary() == 2
    assert sorted(path.name for path in store.models.folder.iterdir()) == [
        "damaged.json", "damaged.keras", "whole.json", "whole.keras"]
    store.remove(["whole", "damaged"])  # prune removes a result's kept model with it
    assert list(store.models.folder.iterdir()) == []


@pytest.mark.slow
def test_predict_errors_are_one_line_naming_the_file(kept_best, tmp_path, capsys):
    _, store = kept_best
    model = store.models.keras_path(sorted(store.models.kept())[0])
    alone = tmp_path / "alone.keras"
    alone.write_bytes(model.read_bytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(tmp_path / "images" / "fine.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    images = str(tmp_path / "images")
    (tmp_path / "fine").mkdir()
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(tmp_path / "fine" / "fine.png")
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(model.read_bytes()[:100])  # truncated
    damaged.with_suffix(".json").write_bytes(store.models.info_path(model.stem).read_bytes())
    cases = [
        (damaged, tmp_path / "fine", f"cannot read the kept model {damaged} ("),
        (tmp_path / "missing.keras", images, f"model file {tmp_path / 'missing.keras'} not found"),
        (alone, images, f"{alone} has no description {tmp_path / 'alone.json'} beside it"),
        (model, tmp_path / "nowhere", f"image folder {tmp_path / 'nowhere'} not found"),
        (model, tmp_path / "empty", f"no image files (.png, .jpg, .jpeg, .bmp, .tif, .tiff) in {tmp_path / 'empty'}"),
        (model, images, f"cannot read image {tmp_path / 'images' / 'broken.png'}"),
    ]
    for model_path, folder, message in cases:
        assert main(["predict", str(model_path), str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err
