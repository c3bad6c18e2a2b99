"""dataset.ordinal: quadratic-weighted kappa and the mean absolute error of the predicted class in every cell and in
the report's tables; protocols without it keep their run ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.protocols import protocol_file_text, run_ids
from helpers.synthetic import grid_rows, protocol_text
from sklearn import metrics as sk

from study.core.vocabulary import higher_is_better
from study.data.sources import source_fingerprint
from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol
from study.report.build import report_document
from study.training.context import WorkerContext
from study.training.metrics import ordinal_metrics
from study.training.worker import run_cell

BASE = protocol_file_text("six_arms_demo")
GRADES = protocol_file_text("ordinal_grades")


def _context(protocol) -> WorkerContext:
    return WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=None, threads=1)


def test_ordinal_metrics_match_sklearn():
    labels = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    probabilities = np.eye(4)[[0, 2, 2, 1, 3, 0, 1, 3]] * 0.7 + 0.075
    scores = ordinal_metrics(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    assert scores["kappa_quadratic"] == pytest.approx(sk.cohen_kappa_score(labels, predicted, weights="quadratic"))
    assert scores["mae_class"] == pytest.approx(np.abs(labels - predicted).mean()) and scores["mae_class"] == 1.0


def test_ordinal_is_part_of_the_run_id_only_when_set():
    planned = run_ids(BASE)
    assert run_ids(BASE.replace("size: 32}", "size: 32, ordinal: false}")) == planned
    ordinal = run_ids(BASE.replace("size: 32}", "size: 32, ordinal: true}"))
    assert len(ordinal) == len(planned) and not set(ordinal) & set(planned)


@pytest.mark.slow
def test_an_ordinal_cell_stores_kappa_and_mae():
    protocol = parse_protocol(GRADES)
    cell = plan_cells(protocol, source_fingerprint(protocol.dataset, None))[0]
    row, predictions, _ = run_cell(cell, _context(protocol))
    assert row["status"] == "done", row["error"]
    predicted, labels = predictions["predicted"].to_numpy(), predictions["label"].to_numpy()
    assert row["mae_class"] == pytest.approx(np.abs(predicted - labels).mean())
    assert row["kappa_quadratic"] == pytest.approx(sk.cohen_kappa_score(labels, predicted, weights="quadratic"))
    plain = parse_protocol(GRADES.replace(", ordinal: true", ""))
    row, _, _ = run_cell(plan_cells(plain, source_fingerprint(plain.dataset, None))[0], _context(plain))
    assert "mae_class" not in row and "kappa_quadratic" not in row


def test_the_report_shows_kappa_and_mae_with_mae_lower_is_better(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3)
    rows = [row | {"kappa_quadratic": row["auc"] - 0.1, "mae_class": 1.0 - row["auc"]} for row in rows]
    protocol = parse_protocol(protocol_text(seeds=3, extra="""\
claims:
  - {id: mae, a: frozen, b: scratch, metric: mae_class}
"""))
    document = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    shown = {table.name: table for table in document.tables()}
    assert {"summary_kappa_quadratic", "summary_mae_class"} <= set(shown)
    assert shown["summary_mae_class"].display.shape == (2, 5)
    assert not higher_is_better("mae_class") and higher_is_better("kappa_quadratic")
    claim = shown["claims"].data.iloc[0]
    assert claim["effect"] > 0  # frozen's smaller error counts as its advantage
    cells = shown["cells"].data
    assert {"kappa_quadratic", "mae_class"} <= set(cells.columns)
