"""dataset.resplit: each seed trains and is tested on a seeded, stratified, group-aware split of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.protocols import write_tiny_protocol
from helpers.synthetic import cell_row, predictions_for
from PIL import Image

from study.analysis.significance import mcnemar_table
from study.analysis.summaries import flagged
from study.core.errors import ProtocolError
from study.data.sources import load_dataset
from study.data.splits import ensure_split, seed_split
from study.protocol.schema import CsvSpec, parse_protocol
from study.store.results import ResultStore
from study.training.caches import load_for
from study.training.context import WorkerContext

PATIENTS = 12  # per class, two images each; one more patient has an image of each class


def _csv_source(root: Path) -> Path:
    """A CSV manifest of tiny PNGs with a patient column: 2 classes x 12 patients x 2 images, and a mixed patient."""
    rng = np.random.default_rng(0)
    rows = ["path,label,patient"]
    images = [(label, f"p{label}{i}") for label in ("a", "b") for i in range(PATIENTS) for _ in range(2)]
    for number, (label, patient) in enumerate(images + [("a", "mixed"), ("b", "mixed")]):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"{number}.png")
        rows.append(f"{number}.png,{label},{patient}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def _spec(**extra) -> CsvSpec:
    return CsvSpec(source="csv", path="manifest.csv", group_column="patient", size=16, resplit=True, **extra)


def _test_ids(dataset) -> set[str]:
    return set(dataset.ids[dataset.split == "test"])


def test_each_seed_gets_its_own_stratified_group_aware_split_and_the_same_one_again(tmp_path):
    _csv_source(tmp_path)
    spec = _spec()
    dataset = ensure_split(load_dataset(spec, tmp_path, None), spec)
    context = WorkerContext(dataset=spec.model_dump(), data_dir=str(tmp_path), cache_dir=None, threads=1)
    splits = {seed: load_for(context, seed) for seed in (0, 1)}
    assert _test_ids(splits[0]) != _test_ids(splits[1])
    for seed, split in splits.items():
        assert (split.split == seed_split(dataset, spec, seed).split).all()  # the same seed, the same split
        for name in ("train", "val", "test"):
            for label in (0, 1):  # stratified: every side holds both classes, near the protocol's shares
                share = np.mean(split.split[split.labels == label] == name)
                assert abs(share - {"train": 0.65, "val": 0.15, "test": 0.2}[name]) < 0.1, (seed, name, label)
        for patient in set(split.groups):  # group-aware: no patient on two sides
            assert len(set(split.split[split.groups == patient])) == 1, (seed, patient)
    assert (load_for(context, None).split == dataset.split).all()  # the fixed split of split_seed, as before
    assert not (dataset.split == splits[0].split).all()


def test_without_resplit_every_seed_shares_the_fixed_split(tmp_path):
    _csv_source(tmp_path)
    spec = _spec().model_copy(update={"resplit": False})
    dataset = ensure_split(load_dataset(spec, tmp_path, None), spec)
    assert all(seed_split(dataset, spec, seed) is dataset for seed in (0, 1, None))


@pytest.mark.slow
def test_run_stores_each_seeds_split_and_tests_each_cell_on_it(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=2, epochs=1)
    protocol.write_text(protocol.read_text().replace("size: 16}", "size: 16, resplit: true}"))
    result = study_command("run", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"), "--jobs", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    store = ResultStore(tmp_path / "results", "tiny")
    split = store.split()
    assert sorted(split["seed"].unique()) == [0, 1] and split["group"].isna().all()
    tests = {seed: set(block.loc[block["split"] == "test", "image_id"]) for seed, block in split.groupby("seed")}
    assert tests[0] != tests[1] and all(len(block) == 60 for _, block in split.groupby("seed"))
    cells = store.cells()
    assert len(cells) == 8 and set(cells["status"]) == {"done"}
    for cell in cells.itertuples():
        assert set(store.predictions(cell.run_id)["image_id"]) == tests[cell.seed], (cell.arm, cell.seed)
    report = (tmp_path / "report" / "tiny" / "report.md").read_text()
    assert "Split: a new seeded split per seed (resplit" in report
    mcnemar = pd.read_csv(tmp_path / "report" / "tiny" / "tables" / "mcnemar.csv")
    assert (mcnemar["seed_a"] == mcnemar["seed_b"]).all() and (mcnemar["n_images"] == len(tests[0])).all()


def test_resplit_is_refused_for_a_source_with_its_own_split(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}",
        "{source: medmnist, name: breastmnist, size: 28, resplit: true}"))
    result = study_command("validate", str(protocol))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {protocol}:2: dataset.resplit: expected false: the source has its own "
                                     "train/val/test split (medmnist's official split), which stays fixed; got true")
    with pytest.raises(ProtocolError, match=r"dataset\.resplit: .*the CSV's 'fold' column"):
        parse_protocol(protocol.read_text().replace("{source: medmnist, name: breastmnist, size: 28, resplit: true}",
                                                    "{source: csv, path: m.csv, split_column: fold, resplit: true}"))


def test_resplit_on_a_folder_with_split_folders_is_refused_when_planned(tmp_path):
    for side in ("train", "test"):
        for label in ("cat", "dog"):
            (tmp_path / "set" / side / label).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(tmp_path / "set" / side / label / f"{i}.png")
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: folder, path: set, resplit: true}"))
    result = study_command("plan", str(protocol), "--results-dir", str(tmp_path / "results"), "--data-dir",
                           str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {protocol}:2: dataset.resplit: expected false: the source has its own "
                                     "train/val/test split (train/val/test folders), which stays fixed; got true")


def test_a_fraction_too_small_for_a_seeds_split_names_the_seed(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace("size: 16}", "size: 16, resplit: true}").replace(
        "fractions: [0.5, 1.0]", "fractions: [0.01, 1.0]"))
    result = study_command("plan", str(protocol), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 2
    assert "fractions: in seed 0's split (dataset.resplit), fraction 0.01 leaves class" in result.stderr


def test_mcnemar_pairs_cells_of_one_seed_when_each_seed_has_its_own_test_set():
    # scratch is best at seed 0, frozen at seed 1; seed 0 holds the best pair (0.9 + 0.6 against 0.5 + 0.8)
    rows = [cell_row("scratch", 1.0, 0, 0.9), cell_row("scratch", 1.0, 1, 0.5),
            cell_row("frozen", 1.0, 0, 0.6), cell_row("frozen", 1.0, 1, 0.8)]
    cells = flagged(pd.DataFrame(rows))
    frames = {row["run_id"]: predictions_for(row) for row in rows}
    apart = mcnemar_table(cells, [("scratch", "frozen")], frames.get).iloc[0]
    assert (apart["seed_a"], apart["seed_b"]) == (0, 1)
    paired = mcnemar_table(cells, [("scratch", "frozen")], frames.get, same_seed=True).iloc[0]
    assert (paired["seed_a"], paired["seed_b"]) == (0, 0)
