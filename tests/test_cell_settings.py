"""What a cell carries to its worker: frozen, typed settings whose record is the one the run id hashes and the store
keeps, unchanged for every shipped protocol."""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from helpers.protocols import protocol_file_text

from study.plan.cells import plan_cells, plan_units
from study.plan.settings import CellSettings
from study.protocol.schema import load_protocol, parse_protocol

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"

# the run ids each shipped protocol plans for data of fingerprint "fp" (a stored result is reused only while they hold):
# (number of cells, sha256 of the ids joined by spaces, first 16 hex digits)
STORED_RUN_IDS = {
    "cheng2016": (36, "6bcd017b82700c55"),
    "smoke": (16, "ea020c636b0f87de"),
    "tajbakhsh": (72, "cbf769d176e1db09"),
    "transfusion": (48, "49b8cab9a5984155"),
    "truncation": (105, "e0d86c8e12a47989"),
}
# protocols/smoke.yaml's frozen cell at fraction 0.25, seed 1, as the store holds its settings_json
STORED_SMOKE_FROZEN = (
    '{"arm": {"depth": "0", "head": {"dropout": 0.5, "kind": "linear", "units": [256]}, "lr_backbone": 0.001, '
    '"lr_head": 0.003, "strategy": "frozen", "truncate_at": null}, "backbone": {"name": "cnn", "weights": "none", '
    '"width": 8}, "dataset": {"channels": 1, "classes": 3, "noise": 0.35, "per_class": 80, "resize": "bilinear", '
    '"size": 32, "source": "synthetic", "split_seed": 0, "test_fraction": 0.2, "val_fraction": 0.15}, "train": '
    '{"augment": false, "batch_size": 16, "batchnorm": "frozen", "class_weight": "balanced", "early_stopping": '
    '{"monitor": "val_auc", "patience": 6}, "epochs": 20, "min_steps": 0, "optimizer": "adam", "threads": 1, '
    '"weight_decay": 0.0}}'
)
TUNED = protocol_file_text("tuning_three_arms")


def _digest(run_ids: list[str]) -> tuple[int, str]:
    return len(run_ids), hashlib.sha256(" ".join(run_ids).encode()).hexdigest()[:16]


def _cells(name: str):
    return plan_cells(load_protocol(PROTOCOLS / f"{name}.yaml"), "fp")


def _chosen(protocol) -> dict:
    values = {"lr_head": 0.02, "lr_backbone": 0.002, "dropout": 0.25, "epochs": 3, "weight_decay": 1e-4}
    return {unit.key: {"key": unit.key, "engine": "optuna", "scope": "once", "trials": 3, "fraction": unit.fraction,
                       "metric": "val_auc", "values": values} for unit in plan_units(protocol, "data")}


@pytest.mark.parametrize("name", sorted(STORED_RUN_IDS))
def test_every_shipped_protocol_keeps_its_run_ids(name):
    assert _digest([cell.run_id for cell in _cells(name)]) == STORED_RUN_IDS[name]


def test_a_tuned_protocol_keeps_its_unit_keys_and_run_ids():
    protocol = parse_protocol(TUNED)
    assert [unit.key for unit in plan_units(protocol, "data")] == [
        "22a294c20e343e792873", "5de262b4cd8281e42984", "ebee3598a72bdc99b319"]
    assert _digest([cell.run_id for cell in plan_cells(protocol, "data")])[1] == "2cf573366e93bb3b"
    assert _digest([cell.run_id for cell in plan_cells(protocol, "data", _chosen(protocol))]) == (12, "bdf2e539a9116bb9")


def test_settings_round_trip_to_the_stored_record():
    stored = json.loads(STORED_SMOKE_FROZEN)
    cell = next(c for c in _cells("smoke") if (c.arm.label, c.fraction, c.seed) == ("frozen", 0.25, 1))
    assert json.dumps(cell.settings.as_dict(), sort_keys=True) == STORED_SMOKE_FROZEN
    assert CellSettings.from_record(stored) == cell.settings
    for name in STORED_RUN_IDS:
        for planned in _cells(name):
            assert CellSettings.from_record(planned.settings.as_dict()) == planned.settings


def test_settings_cannot_change_once_planned():
    settings = _cells("smoke")[0].settings
    with pytest.raises(FrozenInstanceError):
        settings.train.epochs = 3
    with pytest.raises(FrozenInstanceError):
        settings.arm = settings.arm
    with pytest.raises(FrozenInstanceError):
        settings.arm.head.dropout = 0.1


def test_a_tuned_cell_carries_its_chosen_values_and_their_source():
    protocol = parse_protocol(TUNED)
    frozen = next(c for c in plan_cells(protocol, "data", _chosen(protocol)) if c.arm.label == "frozen(mlp)")
    settings = frozen.settings
    assert (settings.arm.lr_head, settings.arm.lr_backbone, settings.arm.head.dropout) == (0.02, 0.002, 0.25)
    assert (settings.train.epochs, settings.train.weight_decay) == (3, 1e-4)
    assert (settings.tuned.engine, settings.tuned.trials, settings.tuned.chosen()["dropout"]) == ("optuna", 3, 0.25)
    assert settings.as_dict()["tuned"]["values"] == _chosen(protocol)[next(iter(_chosen(protocol)))]["values"]
    assert not frozen.awaiting_tuning
    waiting = plan_cells(protocol, "data")[0]
    assert waiting.awaiting_tuning and waiting.settings.as_dict()["tuned"] is None


def test_a_cell_pickles_to_an_equal_cell():
    protocol = parse_protocol(TUNED)
    for cell in (*_cells("cheng2016")[:3], *plan_cells(protocol, "data", _chosen(protocol))[:3]):
        assert pickle.loads(pickle.dumps(cell)) == cell
