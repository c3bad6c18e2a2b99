"""A store built by real runs (done, failed, adopted, tuned and untuned cells of every strategy) reads as one table
in pandas, pyarrow.dataset, polars and DuckDB, and every declared column is one the runs write."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pytest
from helpers.protocols import protocol_file_text

from study.cli import main
from study.store.columns import CELLS

pytestmark = pytest.mark.slow  # the tests share one store built by three real runs (about 12 s)


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory) -> object:
    """results/mixed/cells of: a cell copied from the pilot's store, three more done untuned cells (frozen,
    finetune, truncate), a failed one (an unreadable weights file), and a tuned frozen(mlp) cell (the protocol
    edited to add tuning)."""
    root = tmp_path_factory.mktemp("mixed")
    bad = root / "not-weights.h5"
    bad.write_text("not an HDF5 file")
    dirs = ["--results-dir", str(root / "results"), "--report-dir", str(root / "report"), "--jobs", "1",
            "--no-progress"]
    runs = (("pilot", protocol_file_text("store_pilot"), 0),
            ("untuned", protocol_file_text("store_every_strategy").replace("not-weights.h5", str(bad)), 1),
            ("tuned", protocol_file_text("store_tuned_mlp"), 0))
    for name, text, code in runs:
        protocol = root / f"{name}.yaml"
        protocol.write_text(text)
        assert main(["run", str(protocol), *dirs]) == code, name
    return root / "results" / "mixed" / "cells"


def test_the_mixed_store_holds_every_kind_of_cell(mixed_store):
    table = ds.dataset(mixed_store).to_table().to_pandas()
    assert sorted(table["status"]) == ["done"] * 5 + ["failed"]
    assert set(table["strategy"]) == {"scratch", "frozen", "finetune", "truncate"}
    assert table["adopted_from"].tolist().count("pilot") == 1 and table["tuned_json"].notna().sum() == 1


def test_every_reader_reads_the_cells_folder_as_one_table(mixed_store):
    readers = {
        "pandas": lambda: pd.read_parquet(mixed_store),
        "pyarrow.dataset": lambda: ds.dataset(mixed_store).to_table().to_pandas(),
        "polars": lambda: pl.read_parquet(f"{mixed_store}/*.parquet").to_pandas(),
        "duckdb": lambda: duckdb.sql(f"select * from read_parquet('{mixed_store}/*.parquet')").df(),
    }
    for name, read in readers.items():
        frame = read()
        assert len(frame) == 6 and list(frame.columns) == CELLS.names, name
    predictions = pl.read_parquet(f"{mixed_store.parent / 'predictions'}/*.parquet")
    assert predictions["run_id"].n_unique() == 5 and predictions.columns[-2:] == ["prob_0", "prob_1"]


def test_the_schema_declares_exactly_the_columns_the_runs_write(mixed_store):
    table = ds.dataset(mixed_store).to_table()
    written = [name for name in table.column_names if table.column(name).null_count < table.num_rows]
    only_some_sources = {"source_file", "kappa_quadratic", "mae_class"}  # MedMNIST files; dataset.ordinal
    assert written == [name for name in CELLS.names if name not in only_some_sources]
    assert all(ds.dataset(path).schema.equals(CELLS) for path in mixed_store.glob("*.parquet"))
