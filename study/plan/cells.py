"""Expand a protocol into cells (fraction x strategy variant x seed) with stable run ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from study.plan.settings import (
    ArmSettings,
    BackboneSettings,
    CellSettings,
    DatasetSettings,
    NetworkSettings,
    TrainSettings,
)
from study.plan.tuning_units import TuningUnit, make_unit, tuned_arm, tuned_settings
from study.protocol.arms import Arm, protocol_arms
from study.protocol.radimagenet import RADIMAGENET
from study.protocol.schema import Protocol
from study.protocol.strategy_registry import STRATEGIES

RESULT_FORMAT = 2  # bump when the meaning of stored results changes; it changes every run id


@dataclass(frozen=True)
class Cell:
    """A fully resolved run: everything a worker needs, nothing about the grid."""

    run_id: str
    protocol: str
    arm: Arm
    fraction: float
    seed: int
    settings: CellSettings  # resolved dataset, backbone, training and arm settings (what the run id hashes)

    def describe(self) -> str:
        return f"{self.arm.label} fraction={self.fraction:g} seed={self.seed}"

    @property
    def awaiting_tuning(self) -> bool:
        """True for a cell of a tuned protocol whose arm has no chosen values yet (it cannot run)."""
        return self.settings.awaiting_tuning


def weights_fingerprint(weights: str, name: str = "") -> str:
    """What identifies the initial weights: the Keras name, radimagenet, none, the file's content hash, or a KerasHub
    preset's
    name (a local preset folder: the hash of its config and weights files)."""
    if weights in {"imagenet", RADIMAGENET, "none"}:
        return weights
    if weights == "preset":
        folder = Path(name).expanduser()
        files = [folder / "config.json", folder / "model.weights.h5"]
        if not all(path.is_file() for path in files):
            return f"preset:{name}"
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.read_bytes())
        return "sha256:" + digest.hexdigest()
    path = Path(weights).expanduser()
    if not path.is_file():
        return f"missing:{weights}"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_settings(protocol: Protocol) -> DatasetSettings:
    """The dataset section as cells carry it: neither its path nor on_bad_file changes a stored result."""
    return DatasetSettings.from_record(protocol.dataset.model_dump(exclude={"path", "on_bad_file"}))


def network_settings(protocol: Protocol) -> NetworkSettings:
    """The protocol's backbone on its dataset (what the report's map of the data is computed with)."""
    return NetworkSettings(dataset_settings(protocol), BackboneSettings.from_record(protocol.backbone.model_dump()))


def cell_settings(protocol: Protocol, arm: Arm) -> CellSettings:
    """Everything besides fraction and seed that changes a cell's result."""
    backbone = (arm.backbone or protocol.backbone).model_dump()
    if not STRATEGIES[arm.strategy].pretrained:
        backbone["weights"] = "none"
    described = {**asdict(arm), "head": arm.head.model_dump()}
    del described["backbone"]  # it is settings.backbone
    return CellSettings(
        dataset=dataset_settings(protocol),
        backbone=BackboneSettings.from_record(backbone),
        train=TrainSettings.from_record(protocol.train.model_dump(exclude={"lr"})),
        arm=ArmSettings.from_record(described),
    )


def run_id(settings: CellSettings, fraction: float, seed: int, dataset_fingerprint: str, weights_print: str) -> str:
    """A stable hash of everything that changes a cell's result (not comments, key order or report options)."""
    payload = {
        "format": RESULT_FORMAT,
        "settings": settings.as_dict(),
        "fraction": fraction,
        "seed": seed,
        "dataset": dataset_fingerprint,
        "weights": weights_print,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def plan_units(protocol: Protocol, dataset_fingerprint: str) -> list[TuningUnit]:
    """The searches a tuned protocol needs (one per arm, or per arm and fraction), arm-major; none without tuning."""
    if protocol.tuning is None:
        return []
    units: dict[str, TuningUnit] = {}
    for arm in protocol_arms(protocol):
        for fraction in protocol.fractions:
            unit = make_unit(protocol, arm, cell_settings(protocol, arm), fraction, dataset_fingerprint)
            units.setdefault(unit.key, unit)
    return list(units.values())


def plan_cells(protocol: Protocol, dataset_fingerprint: str, chosen: dict[str, dict] | None = None) -> list[Cell]:
    """Every cell of the protocol's grid, ordered fraction-major so early results cover all arms.

    With `tuning:`, each cell takes its unit's chosen values from `chosen` (unit key -> stored choice); a cell
    whose unit has none yet is awaiting tuning.
    """
    arms = protocol_arms(protocol)
    cells = []
    for fraction in protocol.fractions:
        for seed in protocol.seed_list():
            for arm in arms:
                settings, cell_arm = cell_settings(protocol, arm), arm
                if protocol.tuning is not None:
                    unit = make_unit(protocol, arm, settings, fraction, dataset_fingerprint)
                    settings = tuned_settings(settings, (chosen or {}).get(unit.key))
                    cell_arm = tuned_arm(arm, settings) if settings.tuned else arm
                weights = weights_fingerprint(settings.backbone.weights, settings.backbone.name)
                identifier = run_id(settings, fraction, seed, dataset_fingerprint, weights)
                cells.append(Cell(identifier, protocol.name, cell_arm, fraction, seed, settings))
    return cells
