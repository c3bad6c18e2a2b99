"""The parquet store: atomic writes, torn files ignored, retries replace, split stored once, one schema."""

from dataclasses import replace
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.protocols import protocol_file_text

from study.core.errors import StudyError
from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol
from study.store.results import ResultStore
from study.store.columns import CELLS
from study.training.rows import cell_row

CELL = plan_cells(parse_protocol(protocol_file_text("one_frozen_cell")), "fingerprint")[0]


def row(run_id: str, status: str = "done", auc: float = 0.9) -> dict:
    """A stored row of the worker's base columns with a status and an AUC."""
    return cell_row(replace(CELL, run_id=run_id), datetime.now(timezone.utc)) | {"status": status, "auc": auc}


def predictions_of(run_id: str) -> pd.DataFrame:
    """One test image's predictions: a done cell is stored with its predictions."""
    return pd.DataFrame({"run_id": run_id, "image_id": ["x"], "label": [0], "predicted": [0], "prob_0": [1.0]})


def test_put_and_read_back(tmp_path):
    store = ResultStore(tmp_path, "demo")
    predictions = pd.DataFrame({"run_id": "a", "image_id": ["x", "y"], "label": [0, 1], "predicted": [1, 0],
                                "prob_0": [0.2, 0.7], "prob_1": [0.8, 0.3]})
    store.put(row("a"), predictions)
    store.put(row("b", "failed"), None)
    cells = store.cells()
    assert sorted(cells["run_id"]) == ["a", "b"]
    assert store.statuses() == {"a": "done", "b": "failed"}
    pd.testing.assert_frame_equal(store.predictions("a"), predictions)
    assert store.predictions("b") is None


def test_torn_and_temporary_files_are_ignored(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.put(row("a"), predictions_of("a"))
    (store.cells_dir / "torn.parquet").write_bytes(b"PAR1 not really")
    (store.cells_dir / ".b.x1y2.tmp").write_bytes(b"half written")
    assert list(store.cells()["run_id"]) == ["a"]


def test_retry_replaces_failed_row(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.put(row("a", "failed"), None)
    store.put(row("a", "done", 0.8), predictions_of("a"))
    cells = store.cells()
    assert len(cells) == 1 and cells.loc[0, "status"] == "done"
    assert not list(store.cells_dir.glob(".*"))


def test_a_done_cell_whose_predictions_are_gone_is_pending_until_stored_again(tmp_path, caplog):
    store = ResultStore(tmp_path, "demo")
    store.put(row("a"), predictions_of("a"))
    store.put(row("b"), predictions_of("b"))
    (store.predictions_dir / "a.parquet").unlink()
    assert set(store.statuses()) == {"b"} and list(store.cells()["run_id"]) == ["b"]
    assert [record.getMessage() for record in caplog.records] == [
        f"{store.predictions_dir / 'a.parquet'}: missing; its cell counts as pending: `study run` runs it again"]
    store.put(row("a", "done", 0.7), predictions_of("a"))  # the run replaces its row
    assert sorted(store.cells()["run_id"]) == ["a", "b"] and store.row("a")["auc"] == 0.7


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


def test_a_row_with_a_column_the_schema_lacks_is_refused(tmp_path):
    store = ResultStore(tmp_path, "demo")
    with pytest.raises(StudyError, match=r"a\.parquet: columns colour are not in the store's schema"):
        store.put(row("a") | {"colour": "red"}, None)
    with pytest.raises(StudyError, match=r"a\.parquet: required columns arm are empty"):
        store.put(row("a") | {"arm": None}, None)
    with pytest.raises(StudyError, match=r"b\.parquet: columns .* differ from the store's schema"):
        store.put(row("b"), pd.DataFrame({"run_id": "b", "image_id": ["x"], "label": [0], "prob_0": [1.0]}))
    assert not list(store.root.rglob("*.parquet"))


def write_old_format(store: ResultStore) -> None:
    """Cells, predictions and split as written before the schema: each file's types inferred from its values."""
    for run_id, truncate_at in (("a", None), ("b", 3)):
        old = row(run_id, "failed" if truncate_at else "done") | {"truncate_at": truncate_at, "failure": None}
        old.pop("cpu")
        store.cells_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([old]), store.cells_dir / f"{run_id}.parquet")
    store.predictions_dir.mkdir(parents=True)
    pd.DataFrame({"run_id": "a", "image_id": ["x"], "label": [0], "predicted": [0], "prob_0": [0.9],
                  "prob_1": [0.1]}).to_parquet(store.predictions_dir / "a.parquet")
    pd.DataFrame({"image_id": ["x"], "label": [0], "split": ["test"]}).to_parquet(store.root / "split.parquet")


def test_files_written_before_the_schema_read_in_it_and_a_run_rewrites_them_once(tmp_path):
    store = ResultStore(tmp_path, "demo")
    write_old_format(store)
    with pytest.raises(pa.ArrowNotImplementedError, match="from int64 to null"):
        pq.ParquetDataset(store.cells_dir).read()  # null-typed in one file, int64 in the other
    cells = store.cells()
    assert list(cells.columns) == CELLS.names and cells["truncate_at"].tolist()[1] == 3
    assert store.row("a")["cpu"] is None and store.predictions("a")["prob_1"].tolist() == [0.1]

    assert store.conform_files() == 4  # two cells, one prediction file, the split
    assert pq.ParquetDataset(store.cells_dir).read().schema.equals(CELLS)
    assert store.cells().equals(cells) and store.split()["seed"].isna().all()
    stamps = {path: path.stat().st_mtime_ns for path in store.root.rglob("*.parquet")}
    assert store.conform_files() == 0
    assert {path: path.stat().st_mtime_ns for path in store.root.rglob("*.parquet")} == stamps
