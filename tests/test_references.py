"""Published reference numbers beside a run's own: the compare command and the report section."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.synthetic import (
    as_planned,
    grid_rows,
    protocol_text,
    with_history,
    write_protocol,
    write_store,
)

from study.analysis.summaries import flagged, summarize
from study.data.medmnist_table import FLAGS
from study.protocol.schema import parse_protocol
from study.report.build import report_document
from study.report.references import REFERENCES, comparison


def as_medmnist(text: str) -> str:
    return text.replace("{source: synthetic, classes: 2, per_class: 30, size: 16}",
                        "{source: medmnist, name: BreastMNIST, size: 16}")


V2 = "MedMNIST v2 (Yang et al. 2023)"
V2_METHODS = {("ResNet-18", "28"), ("ResNet-18", "224"), ("ResNet-50", "28"), ("ResNet-50", "224"),
              ("auto-sklearn", "not stated"), ("AutoKeras", "not stated"), ("Google AutoML Vision", "not stated")}


def test_every_medmnist_dataset_has_every_method_of_the_v2_benchmark_table():
    assert set(REFERENCES) == set(FLAGS)
    for name, rows in REFERENCES.items():
        v2 = [row for row in rows if row.source == V2]
        assert {(row.model, row.input_px) for row in v2} == V2_METHODS and len(v2) == len(V2_METHODS), name
        assert all(0.5 <= row.auc <= 1 and 0 < row.accuracy <= 1 for row in v2), name


@pytest.mark.parametrize(("name", "model", "px", "accuracy", "auc"), [
    ("breastmnist", "ResNet-18", "28", 0.863, 0.901),  # the values the science notes quote
    ("pneumoniamnist", "ResNet-18", "28", 0.854, 0.944),
    ("pneumoniamnist", "ResNet-50", "224", 0.884, 0.962),
    ("retinamnist", "ResNet-18", "28", 0.524, 0.717),
])
def test_the_table_holds_the_published_values(name, model, px, accuracy, auc):
    row, = [r for r in REFERENCES[name] if (r.source, r.model, r.input_px) == (V2, model, px)]
    assert (row.accuracy, row.auc) == (accuracy, auc)


def test_a_medmnist_run_sits_beside_the_published_numbers_at_fraction_one():
    protocol = parse_protocol(as_medmnist(protocol_text(seeds=3)))
    summary = summarize(flagged(pd.DataFrame(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))))
    frame = comparison(protocol, summary)
    published = frame[frame["kind"] == "published"]
    ours = frame[frame["kind"] == "this run"]
    assert len(published) == len(REFERENCES["breastmnist"]) and "0.8630" in set(published["accuracy"])
    assert list(ours["training"]) == ["scratch, 3 seed(s)", "frozen, 3 seed(s)"]
    full = summary[(summary["fraction"] == 1.0) & (summary["arm"] == "frozen")].iloc[0]
    assert ours.iloc[1]["auc"] == f"{full['auc_mean']:.3f} ± {full['auc_std']:.3f}"


def test_accuracy_at_the_validation_operating_point_sits_beside_plain_accuracy():
    protocol = parse_protocol(as_medmnist(protocol_text(seeds=3)))
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3)
    newer = comparison(protocol, summarize(flagged(pd.DataFrame([with_history(row) for row in rows]))))
    older = comparison(protocol, summarize(flagged(pd.DataFrame(rows))))
    column = "accuracy (val. operating point)"
    assert list(newer.columns) == ["kind", "source", "model", "input px", "training", "accuracy", column, "auc"]
    assert set(newer.loc[newer["kind"] == "published", column]) == {"-"}
    ours = newer[newer["kind"] == "this run"]
    assert all(float(op.split()[0]) == pytest.approx(float(plain.split()[0]) + 0.02, abs=1.5e-3)
               for op, plain in zip(ours[column], ours["accuracy"]))
    assert set(older.loc[older["kind"] == "this run", column]) == {"not stored"}


def test_datasets_without_references_get_no_section(tmp_path):
    synthetic = parse_protocol(protocol_text(seeds=3))
    cells = pd.DataFrame(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    assert set(comparison(synthetic, summarize(flagged(cells)))["kind"]) == {"this run"}
    titles = [section.title for section in report_document(synthetic, cells, lambda run_id: None, tmp_path / "none.npz").sections]
    assert "Published reference numbers" not in titles
    medmnist = parse_protocol(as_medmnist(protocol_text(seeds=3)))
    titles = [section.title for section in report_document(medmnist, cells, lambda run_id: None, tmp_path / "none.npz").sections]
    assert "Published reference numbers" in titles


def test_compare_command_prints_both_kinds(tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(as_medmnist(protocol_text(name="cmp", seeds=3)))
    result = study_command("compare", str(protocol), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    assert "MedMNIST v2" in result.stdout and "no finished cells at fraction 1" in result.stdout



def test_compare_prints_the_runs_own_table_for_any_dataset(tmp_path):
    protocol = write_protocol(tmp_path, name="own", seeds=3)
    rows = as_planned(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3), protocol)
    write_store(tmp_path / "results", rows, name="own")
    result = study_command("compare", str(protocol), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("no published reference numbers for synthetic")
    assert "model" in lines[1] and "auc" in lines[1] and "accuracy" in lines[1]
    assert [line.split()[2] for line in lines[2:]] == ["scratch,", "frozen,"]
    assert all(" ± " in line for line in lines[2:])
