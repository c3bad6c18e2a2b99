"""Every file the store holds, missing, truncated or garbage, on a store a real run made: `status`, `report` and `run`
say so in at most one line (no traceback), nothing finished is lost or stored twice, and the next run heals it
(docs/guide/store.md, "When a store file is damaged")."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.protocols import protocol_file_text, write_tiny_protocol

from study.store.results import ResultStore

DAMAGES = ("missing", "truncated", "garbage")
KEEP = ("--keep-models", "best")
LOOKS = ("--until-decided", "--max-seeds", "3", "--seeds-per-round", "1")


def damage(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"\x00garbage, not a store file\n" * 8)


def study(command: str, protocol: Path, folder: Path, *options: str):
    """A command on folder's results; its exit code and its stderr lines other than the cells' progress lines."""
    done = study_command(command, str(protocol), "--results-dir", str(folder / "results"), "--report-dir",
                         str(folder / "report"), *(("--no-progress", *options) if command == "run" else ()))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [line for line in done.stderr.splitlines() if not line.startswith("[")], done.stdout


def made(tmp_path_factory, name: str, protocol_text: str, *options: str) -> Path:
    """A folder with protocol.yaml and the results of running it."""
    folder = tmp_path_factory.mktemp(name)
    protocol = folder / "protocol.yaml"
    protocol.write_text(protocol_text)
    code, lines, _ = study("run", protocol, folder, *options)
    assert code == 0, lines
    return folder


def copied(made_folder: Path, tmp_path: Path) -> Path:
    shutil.copytree(made_folder / "results", tmp_path / "results")
    shutil.copy(made_folder / "protocol.yaml", tmp_path / "protocol.yaml")
    return tmp_path / "protocol.yaml"


def stored(store: ResultStore) -> pd.Series:
    """How many rows each run id has in the cells folder, read as one table."""
    return pd.read_parquet(store.cells_dir)["run_id"].value_counts()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    text = write_tiny_protocol(tmp_path_factory.mktemp("text"), epochs=1).read_text()
    return made(tmp_path_factory, "tiny", text, *KEEP)


TINY_FILES = {  # kind -> the files damaged, relative to the results directory
    "cells": "tiny/cells/*.parquet",
    "predictions": "tiny/predictions/*.parquet",
    "split": "tiny/split.parquet",
    "dataset": "tiny/dataset.json",
    "protocol copy": "tiny/protocol.yaml",
    "image cache": ".cache/images-*.npz",
    "feature cache": ".cache/features/*.npy",
    "kept model": "tiny/models/*.keras",
    "model description": "tiny/models/*.json",
}


TRUNCATED_APART = ("cells", "predictions", "kept model")  # parquet and zip files read from their end
# a truncated JSON, npz or YAML file fails as garbage does, by the same path: it is damaged that way once
TINY_DAMAGES = [(kind, how) for kind in TINY_FILES for how in DAMAGES
                if how != "truncated" or kind in TRUNCATED_APART or kind == "split"]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "how"), TINY_DAMAGES)
def test_a_damaged_file_is_told_in_one_line_and_the_next_run_heals_it(tiny, tmp_path, kind, how):
    protocol = copied(tiny, tmp_path)
    results = tmp_path / "results"
    store = ResultStore(results, "tiny")
    before = store.cells().set_index("run_id")
    paths = sorted(results.glob(TINY_FILES[kind]))
    paths = paths if kind == "feature cache" else paths[:1]
    originals = {path: path.read_bytes() for path in paths}
    for path in paths:
        damage(path, how)
    rerun = set()
    if kind in ("cells", "predictions"):
        rerun = {paths[0].stem}
    if kind == "feature cache":  # the cells on cached features of both seeds train again: they read the cache
        rerun = set(before.index[(before["strategy"] == "finetune") & (before["fraction"] == 1)])
        for run_id in rerun:
            (store.cells_dir / f"{run_id}.parquet").unlink()
    unchanged = {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()}

    code, lines, out = study("status", protocol, tmp_path)
    assert code == 0 and len(lines) <= 1, lines
    assert f"total: {8 - len(rerun)} done, 0 failed, {len(rerun)} pending" in out
    code, report_lines, _ = study("report", protocol, tmp_path)
    assert code == 0 and len(report_lines) <= 1, report_lines
    assert (tmp_path / "report" / "tiny" / "report.md").is_file()
    for told in (lines, report_lines):
        assert all(paths[0].name in line and "study run" in line for line in told), told

    code, lines, out = study("run", protocol, tmp_path, *KEEP)
    assert code == 0 and len(lines) <= len(paths), lines
    assert f"{len(rerun)} done, 0 failed, {8 - len(rerun)} skipped" in out
    counts = stored(store)
    assert set(counts.index) == set(before.index) and set(counts) == {1}  # nothing lost, nothing stored twice
    assert {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir() if path in unchanged
            and path.stem not in rerun} == {path: stamp for path, stamp in unchanged.items()
                                             if path.stem not in rerun}
    after = store.cells().set_index("run_id")
    assert (after["status"] == "done").all() and len(after) == 8
    assert all(len(store.predictions(run_id)) == before.loc[run_id, "n_test"] for run_id in after.index)
    if kind in ("split", "dataset", "protocol copy"):
        assert paths[0].read_bytes() == originals[paths[0]]  # written again, the same
    if kind in ("image cache", "feature cache"):
        assert all(np.load(path, allow_pickle=False) is not None for path in paths)
    if kind in ("kept model", "model description"):
        assert paths[0].stem in store.models.kept()
    code, lines, out = study("status", protocol, tmp_path)
    assert code == 0 and lines == [] and "total: 8 done, 0 failed, 0 pending" in out


@pytest.fixture(scope="module")
def looks(tmp_path_factory) -> Path:
    return made(tmp_path_factory, "looks", protocol_file_text("sequential_two_arms"), *LOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_sequential_record_reads_as_absent_and_the_next_looks_write_it_again(looks, tmp_path, how):
    protocol = copied(looks, tmp_path)
    store = ResultStore(tmp_path / "results", "looks")
    record, cells = store.sequential(), store.cells()
    damage(store.root / "sequential.json", how)
    for command in ("status", "report"):
        code, lines, _ = study(command, protocol, tmp_path)
        assert code == 0 and len(lines) <= 1, lines
        assert all("sequential.json" in line and "study run --until-decided" in line for line in lines), lines
    code, lines, out = study("run", protocol, tmp_path, *LOOKS)
    assert code == 0 and len(lines) <= 1, lines
    assert f"0 done, 0 failed, {len(cells)} skipped" in out  # the looks read the stored cells, none trains again
    assert store.sequential() == record and set(stored(store)) == {1} and len(stored(store)) == len(cells)
    code, lines, out = study("status", protocol, tmp_path)
    assert lines == [] and f"total: {len(cells)} done, 0 failed, 0 pending" in out


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    return made(tmp_path_factory, "tuned", protocol_file_text("tuned_scratch", trials=2, epochs=1))


def database(results: Path) -> Path:
    return results / "tuned" / "tuning" / "optuna-tuned-once.db"


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_tuning_record_is_stored_again_from_the_tuning_database(tuned, tmp_path, how):
    protocol = copied(tuned, tmp_path)
    store = ResultStore(tmp_path / "results", "tuned")
    records, cells = store.tuning_records(), store.cells()
    damage(next(store.chosen_dir.glob("*.json")), how)
    for command in ("status", "report"):
        code, lines, _ = study(command, protocol, tmp_path)
        assert code == 0 and len(lines) <= 1, lines
    code, lines, out = study("run", protocol, tmp_path)
    assert code == 0 and len(lines) <= 1, lines
    assert "0 done, 0 failed, 1 skipped" in out  # no trial and no cell trains again
    assert store.tuning_records() == records and store.cells().equals(cells)


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_tuning_database_is_not_read_while_the_choices_stand(tuned, tmp_path, how):
    protocol = copied(tuned, tmp_path)
    store = ResultStore(tmp_path / "results", "tuned")
    cells = store.cells()
    damage(database(tmp_path / "results"), how)
    for command in ("status", "report", "run"):
        code, lines, _ = study(command, protocol, tmp_path)
        assert code == 0 and lines == [], lines
    assert store.cells().equals(cells)


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES[1:])
def test_a_damaged_tuning_database_needed_again_stops_in_one_line_saying_to_delete_it(tuned, tmp_path, how):
    protocol = copied(tuned, tmp_path)
    store = ResultStore(tmp_path / "results", "tuned")
    cells = store.cells()
    damage(database(tmp_path / "results"), how)
    for path in store.chosen_dir.glob("*.json"):
        path.unlink()
    for command in ("status", "run"):
        code, lines, _ = study(command, protocol, tmp_path)
        assert code == 1 and len(lines) == 1, lines
        assert lines[0] == (f"error: {database(tmp_path / 'results')}: not a readable Optuna database "
                            f"({lines[0].split('(')[1].split(')')[0]}); delete it and `study run` searches again "
                            "(its trials run again)")
    database(tmp_path / "results").unlink()
    code, lines, _ = study("run", protocol, tmp_path)
    assert code == 0 and lines == [], lines
    assert len(store.tuning_records()) == 1 and set(cells["run_id"]) <= set(store.cells()["run_id"])
    assert set(stored(store)) == {1}


def test_a_damaged_feature_map_is_told_in_the_report_and_written_again(tmp_path):
    from study.analysis.embedding import FeaturesError, readable_features, tsne_map

    path = tmp_path / "cnn-16px.npz"
    arrays = {"features": np.zeros((4, 2)), "labels": np.zeros(4, int), "ids": np.array(list("abcd")),
              "split": np.array(["train"] * 4), "class_names": np.array(["a", "b"])}
    np.savez(path, **arrays)
    assert readable_features(path)
    for how in DAMAGES:
        np.savez(path, **arrays)
        damage(path, how)
        assert not readable_features(path)  # the run writes it again
        if how != "missing":
            with pytest.raises(FeaturesError, match="`study run` writes it again"):
                tsne_map(path)

