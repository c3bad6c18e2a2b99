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
