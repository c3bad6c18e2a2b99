"""The shared vocabulary: the strategy registry (fields, labels, order, tuning, heatmaps) and the enums."""

from __future__ import annotations

import random
from typing import get_args

import pandas as pd
import pytest
from pydantic import ValidationError

from study.analysis.summaries import ARM_COLUMNS, arm_order
from study.core.failures import FailureKind
from study.core.vocabulary import (
    METRICS,
    CellStatus,
    Direction,
    TrialStatus,
    Verdict,
    direction,
    higher_is_better,
)
from study.protocol.arms import Arm
from study.protocol.schema import (
    BackboneSpec,
    EarlyStopping,
    HeadSpec,
    StrategySpec,
    TuningMetric,
)
from study.protocol.strategy_registry import (
    FIELDS,
    STRATEGIES,
    STRATEGY_NAMES,
    Family,
    arm_sort_key,
)


def _arm(strategy: str, depth: str, at: int | None = None, head: str = "linear", backbone: str | None = None) -> Arm:
    own = None if backbone is None else BackboneSpec(name=backbone, weights="none", width=16)
    return Arm(strategy, depth, at, HeadSpec(kind=head), 1e-4, 1e-3, backbone=own)


# the report's order of a mixed set of arms, as tables have always shown it
ORDERED = [
    ("scratch", _arm("scratch", "all")),
    ("scratch[cnn-16]", _arm("scratch", "all", backbone="cnn")),
    ("frozen", _arm("frozen", "0")),
    ("frozen(mlp)", _arm("frozen", "0", head="mlp")),
    ("finetune(depth=2)", _arm("finetune", "2")),
    ("finetune(depth=2)[cnn-16]", _arm("finetune", "2", backbone="cnn")),
    ("finetune(depth=10)", _arm("finetune", "10")),
    ("finetune(depth=all)", _arm("finetune", "all")),
    ("truncate(at=3)", _arm("truncate", "all", 3)),
    ("truncate(at=3,depth=1)", _arm("truncate", "1", 3)),
    ("truncate(at=3,depth=1)[cnn-16]", _arm("truncate", "1", 3, backbone="cnn")),
    ("truncate(at=12)", _arm("truncate", "all", 12)),
]


def _stored(arms: list[Arm]) -> pd.DataFrame:
    """Cell rows of these arms as the store holds them (truncate_at a float column with gaps)."""
    rows = [(arm.label, arm.strategy, arm.depth, arm.truncate_at) for arm in arms for _ in range(2)]
    return pd.DataFrame(rows, columns=ARM_COLUMNS).astype({"truncate_at": float})


def test_every_arm_label_is_built_from_its_fields():
    assert [arm.label for _, arm in ORDERED] == [label for label, _ in ORDERED]


def test_sorting_stored_columns_gives_the_report_order():
    arms = [arm for _, arm in ORDERED]
    random.Random(0).shuffle(arms)
    assert arm_order(_stored(arms)) == [label for label, _ in ORDERED]


@pytest.mark.parametrize("label, arm", ORDERED)
def test_every_label_sorts_by_its_strategy_rank(label, arm):
    rank, strategy, _, tie = arm_sort_key(arm.strategy, arm.depth, arm.truncate_at, arm.label)
    assert (rank, strategy, tie) == (STRATEGY_NAMES.index(arm.strategy), arm.strategy, label)


def test_the_registry_names_the_strategies_a_protocol_accepts():
    assert STRATEGY_NAMES == ("scratch", "frozen", "finetune", "truncate")
    assert get_args(StrategySpec.model_fields["name"].annotation) == STRATEGY_NAMES


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_each_strategy_refuses_the_fields_it_does_not_take(name):
    entry = STRATEGIES[name]
    needed = {field: ("all" if field == "depth" else 1) for field in entry.needs}
    for field in FIELDS:
        value = "all" if field == "depth" else 1
        if field in entry.takes:
            StrategySpec(name=name, **{**needed, field: value})
        else:
            with pytest.raises(ValidationError, match=rf"{field} is (only|not) for .*{name}"):
                StrategySpec(name=name, **{**needed, field: value})
    for field in entry.needs:
        with pytest.raises(ValidationError, match=f"{name} needs {field}: "):
            StrategySpec(name=name, **{key: value for key, value in needed.items() if key != field})


def test_tuning_searches_a_backbone_rate_only_where_a_pretrained_backbone_trains():
    searched = {name: entry.searched_rates for name, entry in STRATEGIES.items()}
    assert searched == {"scratch": ("lr_head",), "frozen": ("lr_head",), "finetune": ("lr_head", "lr_backbone"),
                        "truncate": ("lr_head", "lr_backbone")}
    assert [name for name, entry in STRATEGIES.items() if entry.backbone_at_head_rate] == ["scratch"]


def test_heatmap_families():
    assert {name: entry.family for name, entry in STRATEGIES.items()} == {
        "scratch": None, "frozen": Family.DEPTH, "finetune": Family.DEPTH, "truncate": Family.CUT}


@pytest.mark.parametrize("metric", [*METRICS, *get_args(TuningMetric),
                                    *get_args(EarlyStopping.model_fields["monitor"].annotation)])
def test_direction_of_every_metric(metric):
    lower = metric in {"log_loss", "mae_class", "val_loss"}
    assert direction(metric) == (Direction.MINIMIZE if lower else Direction.MAXIMIZE)
    assert higher_is_better(metric) is not lower


def test_enum_values_are_the_stored_strings():
    assert [str(status) for status in CellStatus] == ["pending", "running", "done", "failed"]
    assert [str(kind) for kind in FailureKind] == ["retryable", "deterministic", "fatal"]
    assert [str(verdict) for verdict in Verdict] == ["supported", "contradicted", "inconclusive"]
    assert [str(way) for way in Direction] == ["maximize", "minimize"]
    assert [str(state) for state in TrialStatus] == ["complete", "pruned", "failed"]
