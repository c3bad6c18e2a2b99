"""How tuning enters the plan: units per arm (or arm x fraction), the search space per strategy, chosen values
in cell settings and run ids, cells awaiting tuning."""

from __future__ import annotations

import pytest
from helpers.protocols import protocol_file_text

from study.plan.cells import plan_cells, plan_units
from study.plan.tuning_units import space_for
from study.protocol.schema import parse_protocol

TUNED = protocol_file_text("tuning_three_arms")


def choice(unit, **values) -> dict:
    values = {"lr_head": 0.02, "lr_backbone": 0.002, **values}
    return {"key": unit.key, "engine": "optuna", "scope": "once", "trials": 3, "fraction": unit.fraction,
            "metric": "val_auc", "values": values}


def test_scope_once_tunes_each_arm_at_the_largest_fraction_and_reuses_it():
    protocol = parse_protocol(TUNED)
    units = plan_units(protocol, "data")
    assert [(u.label, u.fraction) for u in units] == [("scratch", 1.0), ("frozen(mlp)", 1.0), ("finetune(depth=1)", 1.0)]
    per_fraction = parse_protocol(TUNED.replace("trials: 3,", "trials: 3, scope: per_fraction,"))
    assert len(plan_units(per_fraction, "data")) == 3 * 2
    at_half = parse_protocol(TUNED.replace("trials: 3,", "trials: 3, fraction: 0.5,"))
    assert {u.fraction for u in plan_units(at_half, "data")} == {0.5}


def test_each_strategy_searches_only_what_it_uses():
    protocol = parse_protocol(TUNED)
    spaces = {unit.label: set(space_for(unit.base, protocol)) for unit in plan_units(protocol, "data")}
    assert spaces == {"scratch": {"lr_head"}, "frozen(mlp)": {"lr_head", "dropout"},
                      "finetune(depth=1)": {"lr_head", "lr_backbone"}}
    tied = parse_protocol(TUNED.replace("space: {", "space: {backbone_ratio: 0.1, "))
    assert "lr_backbone" not in space_for(plan_units(tied, "data")[2].base, tied)


def test_cells_await_tuning_then_train_with_the_chosen_values():
    protocol = parse_protocol(TUNED)
    waiting = plan_cells(protocol, "data")
    assert all(cell.awaiting_tuning for cell in waiting)
    units = plan_units(protocol, "data")
    chosen = {unit.key: choice(unit, dropout=0.25) for unit in units}
    cells = plan_cells(protocol, "data", chosen)
    assert not any(cell.awaiting_tuning for cell in cells)
    assert {cell.run_id for cell in cells}.isdisjoint(cell.run_id for cell in waiting)
    frozen = next(cell for cell in cells if cell.arm.label == "frozen(mlp)")
    assert (frozen.arm.lr_head, frozen.arm.head.dropout) == (0.02, 0.25)
    assert frozen.settings.arm.head.dropout == 0.25
    assert frozen.settings.tuned.chosen()["dropout"] == 0.25
    other = {unit.key: choice(unit, lr_head=0.03, dropout=0.25) for unit in units}
    assert {c.run_id for c in plan_cells(protocol, "data", other)}.isdisjoint(c.run_id for c in cells)


def test_a_changed_budget_continues_tuning():
    from study.store.tuning_choices import current_choices

    protocol = parse_protocol(TUNED)
    unit = plan_units(protocol, "data")[0]
    assert current_choices({unit.key: choice(unit)}, protocol) == {unit.key: choice(unit)}
    bigger = parse_protocol(TUNED.replace("trials: 3", "trials: 5"))
    assert current_choices({unit.key: choice(unit)}, bigger) == {}
    assert plan_units(bigger, "data")[0].key == unit.key  # the same search goes on


@pytest.mark.parametrize(
    "tuning, expected",
    [
        ("{trials: 0}", r"^t\.yaml:11: tuning\.trials: expected a number >= 1, got 0$"),
        ("{engine: hyperopt}", r"^t\.yaml:11: tuning\.engine: expected one of 'optuna' or 'keras_tuner', got 'hyperopt'"),
        ("{budget: 4}", r"^t\.yaml:11: tuning\.budget: unknown field"),
        ("{space: {lr_head: {low: 0.1, high: 0.01}}}",
         r"^t\.yaml:11: tuning\.space\.lr_head: low must be below high, got low 0\.1 and high 0\.01$"),
        ("{space: {lr_backbone: {low: 0, high: 0.01}}}",
         r"^t\.yaml:11: tuning\.space\.lr_backbone\.low: expected a number > 0"),
        ("{space: {lr: {low: 0.001, high: 0.01}}}", r"^t\.yaml:11: tuning\.space\.lr: unknown field"),
        ("{fraction: 0.3}", r"^t\.yaml:11: tuning\.fraction: expected one of the fractions \[0\.5, 1\.0\], got 0\.3$"),
        ("{scope: per_fraction, fraction: 0.5}", r"^t\.yaml:11: tuning: fraction is only for scope: once"),
        ("{scope: per_arm}", r"^t\.yaml:11: tuning\.scope: expected one of 'once' or 'per_fraction'"),
        ("{metric: test_auc}", r"^t\.yaml:11: tuning\.metric: expected one of .*got 'test_auc'"),
        ("{pruner: {kind: hyperband}}", r"^t\.yaml:11: tuning\.pruner\.kind: expected one of 'median' or 'none'"),
    ],
)
def test_bad_tuning_options_give_one_line(tuning, expected):
    from study.core.errors import ProtocolError

    text = TUNED.replace("tuning: {trials: 3, space: {dropout: {low: 0.1, high: 0.5}}}", f"tuning: {tuning}")
    with pytest.raises(ProtocolError, match=expected) as caught:
        parse_protocol(text, "t.yaml")
    assert "\n" not in str(caught.value)


def test_protocol_guide_tuning_example_is_valid():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "protocol.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    base = next(block for block in blocks if block.startswith("name: truncation"))
    example = next(block for block in blocks if block.startswith("tuning:"))
    base = "\n".join(line for line in base.splitlines() if not line.startswith("tuning:")) + "\n"
    protocol = parse_protocol(base + example, "protocol.md")
    assert protocol.tuning.space.weight_decay.high == 1e-2 and protocol.tuning.fraction == 1.0
    assert protocol.tuning_metric() == "val_auc"
