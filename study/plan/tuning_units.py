"""What tuning tunes: one unit per arm (scope once) or per arm and fraction, and how its values enter cells.

A cell of a tuned protocol carries `settings.tuned`: the values it trained with and where they came from
(engine, scope, budget, the fraction tuned at, the metric). The values also replace the arm's learning rates and
the training settings they name, so the run id changes with them; a protocol without `tuning:` has no such key
and keeps its run ids. Until its unit is tuned a cell's settings are `awaiting_tuning`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from study.plan.settings import CellSettings, TunedValues
from study.protocol.arms import Arm
from study.protocol.schema import HeadSpec, Protocol
from study.protocol.strategy_registry import STRATEGIES


@dataclass(frozen=True)
class TuningUnit:
    """One search: an arm at one fraction, with the settings every trial starts from."""

    key: str  # stable id: a hash of everything that changes the trials' results
    arm: Arm  # the arm as the protocol states it, before tuning
    fraction: float
    base: CellSettings  # the arm's cell settings with the protocol's values, before tuning

    @property
    def label(self) -> str:
        """The arm's label, e.g. finetune(depth=2)."""
        return self.arm.label

    @property
    def name(self) -> str:
        """A readable, file-safe name of the unit: label, fraction and key."""
        return f"{re.sub(r'[^A-Za-z0-9.=_-]+', '_', self.label).strip('_')}-f{self.fraction:g}-{self.key[:10]}"


def tuned_fraction(protocol: Protocol, fraction: float) -> float:
    """The fraction whose tuning a cell at `fraction` uses."""
    tuning = protocol.tuning_spec()
    if tuning.scope == "per_fraction":
        return fraction
    return tuning.fraction if tuning.fraction is not None else max(protocol.fractions)


def make_unit(protocol: Protocol, arm: Arm, base: CellSettings, fraction: float,
              dataset_fingerprint: str) -> TuningUnit:
    """The unit that tunes an arm (with its untuned cell settings) for cells at `fraction`."""
    tuning = protocol.tuning_spec()
    at = tuned_fraction(protocol, fraction)
    payload = {
        "settings": base.as_dict(), "fraction": at, "dataset": dataset_fingerprint, "engine": tuning.engine,
        "metric": protocol.tuning_metric(), "seed": tuning.seed, "space": sorted(space_for(base, protocol)),
        "ranges": tuning.space.model_dump(), "pruner": tuning.pruner.model_dump(),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return TuningUnit(hashlib.sha256(canonical.encode()).hexdigest()[:20], arm, at, base)


def space_for(settings: CellSettings, protocol: Protocol) -> dict[str, dict[str, Any]]:
    """The parameters this arm searches, each {kind: log|linear|int, low, high}.

    The learning rates are those the strategy offers (study.protocol.strategy_registry: scratch trains every layer at the
    head rate and frozen has no trainable backbone, so neither searches lr_backbone); with space.backbone_ratio the
    backbone rate follows the head rate instead of being searched; dropout is searched only for mlp heads.
    """
    space = protocol.tuning_spec().space
    arm = settings.arm
    searched = {"lr_head": {"kind": "log", **space.lr_head.model_dump()}}
    if "lr_backbone" in STRATEGIES[arm.strategy].searched_rates and space.backbone_ratio is None:
        searched["lr_backbone"] = {"kind": "log", **space.lr_backbone.model_dump()}
    if space.weight_decay is not None:
        searched["weight_decay"] = {"kind": "log", **space.weight_decay.model_dump()}
    if space.dropout is not None and arm.head.kind == "mlp":
        searched["dropout"] = {"kind": "linear", **space.dropout.model_dump()}
    if space.epochs is not None:
        searched["epochs"] = {"kind": "int", **space.epochs.model_dump()}
    return searched


def complete_values(values: dict[str, Any], settings: CellSettings, protocol: Protocol) -> dict[str, Any]:
    """Searched values plus the learning rates they imply (scratch: backbone = head; ratio: head x ratio)."""
    values = dict(values)
    arm = settings.arm
    if STRATEGIES[arm.strategy].backbone_at_head_rate:
        values["lr_backbone"] = values["lr_head"]
    elif "lr_backbone" not in values:
        ratio = protocol.tuning_spec().space.backbone_ratio
        values["lr_backbone"] = values["lr_head"] * ratio if ratio is not None else arm.lr_backbone
    return values


def apply_values(settings: CellSettings, values: dict[str, Any]) -> CellSettings:
    """Cell settings with tuned values in place of the protocol's (arm rates, head, training)."""
    arm, train = settings.arm, settings.train
    head = replace(arm.head, dropout=float(values["dropout"])) if "dropout" in values else arm.head
    arm = replace(arm, lr_head=float(values["lr_head"]), lr_backbone=float(values["lr_backbone"]), head=head)
    if "weight_decay" in values:
        train = replace(train, weight_decay=float(values["weight_decay"]))
    if "epochs" in values:
        train = replace(train, epochs=int(values["epochs"]))
    return replace(settings, arm=arm, train=train)


def tuned_settings(settings: CellSettings, record: dict[str, Any] | None) -> CellSettings:
    """Cell settings with a unit's chosen values and their source, or marked as awaiting tuning (record None)."""
    if record is None:
        return replace(settings, awaiting_tuning=True)
    return replace(apply_values(settings, record["values"]), tuned=TunedValues.from_record(record))


def tuned_arm(arm: Arm, settings: CellSettings) -> Arm:
    """The Arm with the learning rates and head of (tuned) settings; its other fields (network, output-layer rate)
    as they were."""
    values = settings.arm
    head = HeadSpec(kind=values.head.kind, units=values.head.units, dropout=values.head.dropout)
    return replace(arm, lr_backbone=values.lr_backbone, lr_head=values.lr_head, head=head)


def tuning_columns(settings: CellSettings) -> dict[str, Any]:
    """The store columns of a tuned cell: source of its values and each chosen value (none for untuned protocols)."""
    tuned = settings.tuned
    if tuned is None:
        return {}
    columns = {f"tuning_{key}": getattr(tuned, key) for key in ("engine", "scope", "trials", "fraction", "metric")}
    columns.update({f"tuned_{name}": value for name, value in sorted(tuned.values)})
    columns["tuned_json"] = json.dumps(tuned.chosen(), sort_keys=True)
    return columns
