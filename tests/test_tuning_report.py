"""The report's Tuning section, from a synthetic store: chosen values, budget spent per arm, cells using them."""

from __future__ import annotations

import json

import pytest
from helpers.synthetic import every_stored_cell, grid_rows, write_protocol, write_store

from study.protocol.schema import load_protocol
from study.report.build import build_report

TUNING = "tuning: {trials: 6}\n"


def record(arm: str, lr_head: float, complete: int, pruned: int, trials: int = 6) -> dict:
    return {"key": f"key-{arm}-{trials}", "arm": arm, "fraction": 1.0, "engine": "optuna", "scope": "once",
            "trials": trials, "metric": "val_auc", "values": {"lr_head": lr_head, "lr_backbone": lr_head},
            "best_value": 0.8, "best_trial": 2, "complete": complete, "pruned": pruned, "failed": trials - complete - pruned,
            "trial_seconds": 12.0}


def tuned_rows(choices: dict[str, dict]) -> list[dict]:
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, fractions=(0.5, 1.0), seeds=3)
    for row in rows:
        row["tuned_json"] = json.dumps(choices[row["arm"]]["values"], sort_keys=True)
    return rows


def test_tuning_section_shows_values_and_the_same_budget_per_arm(tmp_path):
    choices = {"scratch": record("scratch", 0.003, 4, 2), "frozen": record("frozen", 0.02, 5, 1)}
    store = write_store(tmp_path / "results", tuned_rows(choices))
    for choice in [*choices.values(), record("frozen", 0.5, 3, 0, trials=3)]:  # the last: an earlier, smaller budget
        store.put_tuning(choice)
    build_report(load_protocol(write_protocol(tmp_path, extra=TUNING)), store, tmp_path / "out",
                 every_stored_cell(store))
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Tuning"):text.index("## Claims")]
    assert "on the validation split only" in section and "every arm got the same budget of 6 trials" in section
    assert "| scratch | 1 | optuna | lr_backbone 0.003, lr_head 0.003 | val_auc 0.800 | 6 of 6 (4/2/0) | 12 | 6 |" in section
    assert "| frozen | 1 | optuna | lr_backbone 0.02, lr_head 0.02 |" in section and "0.5" not in section
    assert (tmp_path / "out" / "tables" / "tuning.csv").is_file()


@pytest.mark.slow
def test_untuned_protocols_have_no_tuning_section_and_untuned_arms_are_said(tmp_path):
    store = write_store(tmp_path / "results", grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    build_report(load_protocol(write_protocol(tmp_path)), store, tmp_path / "plain", every_stored_cell(store))
    assert "## Tuning" not in (tmp_path / "plain" / "report.md").read_text()
    build_report(load_protocol(write_protocol(tmp_path, extra=TUNING)), store, tmp_path / "waiting",
                 every_stored_cell(store))
    assert "no arm has finished its tuning yet" in (tmp_path / "waiting" / "report.md").read_text()
