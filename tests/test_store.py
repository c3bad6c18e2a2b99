"""The parquet store: atomic writes, torn files ignored, retries replace, split stored once."""

import pandas as pd
import pytest

from study.errors import StudyError
from study.store import ResultStore


def row(run_id: str, status: str = "done", auc: float = 0.9) -> dict:
    return {"run_id": run_id, "status": status, "arm": "frozen", "fraction": 1.0, "seed": 0, "auc": auc, "error": None}


def test_put_and_read_back(tmp_path):
    store = ResultStore(tmp_path, "demo")
    predictions = pd.DataFrame({"run_id": "a", "image_id": ["x", "y"], "label": [0, 1], "prob_0": [0.2, 0.7]})
    store.put(row("a"), predictions)
    store.put(row("b", "failed"), None)
    cells = store.cells()
    assert sorted(cells["run_id"]) == ["a", "b"]
    assert store.statuses() == {"a": "done", "b": "failed"}
    pd.testing.assert_frame_equal(store.predictions("a"), predictions)
    assert store.predictions("b") is None


def test_torn_and_temporary_files_are_ignored(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.put(row("a"), None)
    (store.cells_dir / "torn.parquet").write_bytes(b"PAR1 not really")
    (store.cells_dir / ".b.x1y2.tmp").write_bytes(b"half written")
    assert list(store.cells()["run_id"]) == ["a"]


def test_retry_replaces_failed_row(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.put(row("a", "failed"), None)
    store.put(row("a", "done", 0.8), None)
    cells = store.cells()
    assert len(cells) == 1 and cells.loc[0, "status"] == "done"
    assert not list(store.cells_dir.glob(".*"))


def test_empty_store(tmp_path):
    assert ResultStore(tmp_path, "nothing").cells().empty


def test_split_must_not_change(tmp_path):
    store = ResultStore(tmp_path, "demo")
    split = pd.DataFrame({"image_id": ["a", "b"], "label": [0, 1], "split": ["train", "test"]})
    store.put_split(split)
    store.put_split(split.copy())
    with pytest.raises(StudyError, match="stored split differs"):
        store.put_split(split.assign(split=["test", "train"]))


def _seed_block(seed, sides: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"seed": pd.array([seed] * 2, dtype="Int64"), "image_id": ["a", "b"], "label": [0, 1],
                         "group": ["p1", "p2"], "split": sides})


def test_split_keeps_one_block_per_seed_and_adds_new_seeds(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.put_split(pd.concat([_seed_block(0, ["train", "test"]), _seed_block(1, ["test", "train"])]))
    store.put_split(_seed_block(2, ["train", "test"]))  # a seed added to the protocol
    stored = store.split()
    assert stored["seed"].tolist() == [0, 0, 1, 1, 2, 2] and stored["group"].tolist() == ["p1", "p2"] * 3
    with pytest.raises(StudyError, match=r"stored split differs from this run's split \(seed 1's split"):
        store.put_split(_seed_block(1, ["train", "test"]))
    assert len(list(store.root.glob("*.parquet"))) == 1


def test_a_split_stored_without_seed_and_group_columns_reads_as_the_fixed_split(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.root.mkdir(parents=True)
    pd.DataFrame({"image_id": ["a", "b"], "label": [0, 1], "split": ["train", "test"]}).to_parquet(
        store.root / "split.parquet")
    store.put_split(_seed_block(None, ["train", "test"]))
    stored = store.split()
    assert stored["seed"].isna().all() and stored["group"].tolist() == ["p1", "p2"]
