"""A store shared by versions of a protocol: each version's report, status and claims read its own planned cells,
whatever the other versions stored, and the others are counted, never used."""

from __future__ import annotations

import filecmp

import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.protocols import protocol_file_text
from helpers.synthetic import grid_rows, protocol_text, write_store

from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol
from study.store.results import ResultStore

ORIGINAL = protocol_file_text("sequential_two_arms")
EDITED = ORIGINAL.replace("head: 1.0e-2", "head: 3.0e-3")  # the same study with another head rate


def _report_files(folder):
    return sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())


@pytest.mark.slow
def test_edit_run_revert_gives_the_original_report_byte_for_byte(tmp_path):
    assert EDITED != ORIGINAL
    protocol = tmp_path / "looks.yaml"
    dirs = ["--results-dir", str(tmp_path / "results"), "--no-progress"]
    protocol.write_text(ORIGINAL)
    first = study_command("run", str(protocol), *dirs, "--report-dir", str(tmp_path / "original"))
    assert first.returncode == 0, first.stderr

    protocol.write_text(EDITED)
    edited = study_command("run", str(protocol), *dirs, "--report-dir", str(tmp_path / "edited"))
    assert edited.returncode == 0, edited.stderr
    store = ResultStore(tmp_path / "results", "looks")
    assert len(store.cells()) == 8  # the edit trained every cell again (both arms have a head)

    protocol.write_text(ORIGINAL)
    again = study_command("run", str(protocol), *dirs, "--report-dir", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert "0 to run" in again.stdout
    original, rebuilt = tmp_path / "original" / "looks", tmp_path / "again" / "looks"
    assert _report_files(original) == _report_files(rebuilt)
    differing = [str(path) for path in _report_files(original)
                 if not filecmp.cmp(original / path, rebuilt / path, shallow=False)]
    assert differing == []

    report = study_command("report", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "4 stored results are not planned by this protocol" in report.stdout
    status = study_command("status", str(protocol), "--results-dir", str(tmp_path / "results"))
    assert "total: 4 done, 0 failed, 0 pending" in status.stdout
    assert "4 stored results are not planned by this protocol" in status.stdout


def test_report_reads_the_planned_cells_without_the_data_by_the_stored_fingerprint(tmp_path):
    text = protocol_text(name="elsewhere", fractions=(0.5, 1.0), seeds=3).replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: medmnist, name: pathmnist, size: 28}")
    protocol = tmp_path / "elsewhere.yaml"
    protocol.write_text(text)
    planned = {(cell.arm.label, cell.fraction, cell.seed): cell.run_id
               for cell in plan_cells(parse_protocol(text), "fingerprint-of-the-data-a-run-read")}
    rows = [row | {"run_id": planned[(row["arm"], row["fraction"], row["seed"])], "protocol": "elsewhere"}
            for row in grid_rows({"scratch": 0.0, "frozen": 0.05}, fractions=(0.5, 1.0), seeds=3)]
    store = write_store(tmp_path / "results", rows, name="elsewhere")
    store.put_dataset_info({"fingerprint": "fingerprint-of-the-data-a-run-read", "images": 100})
    empty = tmp_path / "no-data"
    empty.mkdir()
    report = study_command("report", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"), "--data-dir", str(empty))  # pathmnist.npz is not there
    assert report.returncode == 0, report.stderr
    cells = pd.read_csv(tmp_path / "report" / "elsewhere" / "tables" / "cells.csv")
    assert sorted(cells["run_id"]) == sorted(row["run_id"] for row in rows)
    assert "not planned" not in report.stdout
