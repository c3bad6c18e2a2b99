"""Claim verdicts on synthetic stores: better by construction is supported, no difference is inconclusive,
worse is contradicted; few seeds never support; degenerate cells and representatives follow the documented rule."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import cell_row, grid_rows, protocol_text

from study.analysis.claims import (
    ALPHA,
    MIN_PAIRS,
    RULE,
    evaluate_claim,
    pooled_decision,
)
from study.analysis.stats import CONFIDENCE, wilcoxon_seeds, wilcoxon_smallest_p
from study.analysis.summaries import flagged, representative_arm
from study.core.errors import ProtocolError
from study.core.vocabulary import Verdict
from study.plan.cells import plan_cells
from study.protocol.schema import ClaimSpec, ReportSpec, parse_protocol

FRACTIONS = [0.1, 0.25, 0.5, 1.0]
REPORT = ReportSpec()


def verdict(rows: list[dict], fractions=FRACTIONS, report: ReportSpec = REPORT, **claim) -> tuple[dict, pd.DataFrame]:
    spec = ClaimSpec(**({"id": "c", "a": "frozen", "b": "scratch"} | claim))
    summary, detail = evaluate_claim(flagged(pd.DataFrame(rows)), spec, report, fractions, resamples=999)
    return summary, pd.DataFrame(detail)


def test_better_by_construction_is_supported():
    summary, detail = verdict(grid_rows({"scratch": 0.0, "frozen": 0.05}, noise=0.005))
    assert summary["verdict"] == Verdict.SUPPORTED, summary["reason"]
    assert summary["effect"] == pytest.approx(0.05, abs=0.005)
    assert summary["ci_low"] > 0 and summary["p"] < 0.05 and summary["effect_seeds"] == 5
    assert (detail["verdict"] == Verdict.SUPPORTED).all() and (detail["t_p_holm"] >= detail["t_p"]).all()


@pytest.mark.parametrize("seed", range(5))
def test_no_difference_is_inconclusive(seed):
    summary, _ = verdict(grid_rows({"scratch": 0.0, "frozen": 0.0}, noise=0.02, seed=seed))
    assert summary["verdict"] == Verdict.INCONCLUSIVE
    assert summary["n_supported"] < len(FRACTIONS)


def test_identical_arms_are_inconclusive_not_supported():
    rows = grid_rows({"scratch": 0.0}, noise=0.0)
    rows += [row | {"arm": "frozen", "strategy": "frozen", "run_id": row["run_id"] + "-frozen"} for row in rows]
    summary, detail = verdict(rows)
    assert summary["verdict"] == Verdict.INCONCLUSIVE
    assert (detail["t_p"] == 1.0).all() and summary["effect"] == 0


def test_worse_by_construction_is_contradicted():
    summary, _ = verdict(grid_rows({"scratch": 0.0, "frozen": -0.05}, noise=0.005))
    assert summary["verdict"] == Verdict.CONTRADICTED and "b better" in summary["reason"]


def test_not_worse_within_a_margin():
    rows = grid_rows({"scratch": 0.0, "frozen": -0.005}, noise=0.002)
    summary, _ = verdict(rows, kind="not_worse", margin=0.03)
    assert summary["verdict"] == Verdict.SUPPORTED, summary["reason"]
    assert summary["effect"] == pytest.approx(-0.005, abs=0.003)  # the effect is reported without the margin
    far, _ = verdict(grid_rows({"scratch": 0.0, "frozen": -0.1}, noise=0.002), kind="not_worse", margin=0.03)
    assert far["verdict"] == Verdict.CONTRADICTED and "worse by more than 0.03" in far["reason"]


def test_three_seeds_support_only_through_the_t_test_and_wilcoxon_cannot_decide():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.08}, fractions=[0.5], seeds=3, noise=0.002)
    summary, detail = verdict(rows, fractions=[0.5])
    assert summary["verdict"] == Verdict.SUPPORTED, summary["reason"]
    assert detail["w_p"].iloc[0] == 0.25 and not detail["wilcoxon_decides"].iloc[0]
    noisy_rows = grid_rows({"scratch": 0.0, "frozen": 0.03}, fractions=[0.5], seeds=3, noise=0.03)
    noisy, _ = verdict(noisy_rows, fractions=[0.5])
    assert noisy["verdict"] == Verdict.INCONCLUSIVE


def test_wilcoxon_must_confirm_once_it_can():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, fractions=[0.5], seeds=8, noise=0.005)
    rows[1]["auc"] = rows[0]["auc"] - 0.001  # seed 0: frozen slightly worse, so not every difference is positive
    _, detail = verdict(rows, fractions=[0.5])
    assert detail["wilcoxon_decides"].iloc[0]


def test_two_seeds_are_never_enough():
    summary, detail = verdict(grid_rows({"scratch": 0.0, "frozen": 0.2}, seeds=2, noise=0.0001))
    assert summary["verdict"] == Verdict.INCONCLUSIVE
    assert detail["reason"].iloc[0] == "2 seed pairs; a verdict needs 3 or more"


def test_collapsed_cells_stay_in_auc_claims_and_leave_argmax_claims():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=4, noise=0.005)
    for row in rows:
        if row["arm"] == "scratch" and row["seed"] < 2:
            row["max_predicted_share"] = 1.0  # one class at argmax, but the ranking (AUC) is intact
    _, on_auc = verdict(rows)
    assert on_auc["dropped_degenerate"].tolist() == [0] * 4 and on_auc["n_pairs"].tolist() == [4] * 4
    _, on_accuracy = verdict(rows, metric="accuracy")
    assert on_accuracy["dropped_degenerate"].tolist() == [2] * 4 and on_accuracy["n_pairs"].tolist() == [2] * 4


def test_degenerate_cells_are_dropped_unless_kept():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=4, noise=0.005)
    for row in rows:
        if row["arm"] == "scratch" and row["seed"] < 2:
            row["auc"] = 0.5  # ranks nothing
    summary, detail = verdict(rows)
    assert summary["verdict"] == Verdict.INCONCLUSIVE
    assert detail["dropped_degenerate"].tolist() == [2] * 4 and detail["n_pairs"].tolist() == [2] * 4
    _, detail = verdict(rows, exclude_degenerate=False)
    assert detail["n_pairs"].tolist() == [4] * 4 and detail["dropped_degenerate"].tolist() == [0] * 4
    _, report_keeps = verdict(rows, report=ReportSpec(exclude_degenerate=False))
    assert report_keeps["n_pairs"].tolist() == [4] * 4


def test_the_reason_names_the_seeds_left_out_and_why():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=4, noise=0.005)
    rows = [row for row in rows if not (row["arm"] == "frozen" and row["seed"] == 3 and row["fraction"] == 1.0)]
    for row in rows:
        if row["arm"] == "scratch" and row["seed"] == 0 and row["fraction"] == 0.25:
            row["auc"] = 0.5  # ranks nothing
    summary, _ = verdict(rows)
    assert summary["effect_seeds"] == 2
    assert summary["reason"].endswith("; left out: seed 0: scratch at 0.25 (no ranking); seed 3: no frozen cell at 1")
    complete, _ = verdict(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=4, noise=0.005))
    assert "left out" not in complete["reason"]


def test_strategy_is_represented_by_its_best_arm_on_validation_not_test():
    rows = []
    for seed in range(3):
        rows.append(cell_row("finetune(depth=1)", 0.5, seed, 0.90, monitor_value=0.70))  # best on test
        rows.append(cell_row("finetune(depth=all)", 0.5, seed, 0.80, monitor_value=0.75))  # best on validation
    assert representative_arm(pd.DataFrame(rows), ["finetune"], 0.5) == "finetune(depth=all)"
    by_loss = [row | {"monitor": "val_loss"} for row in rows]  # lower is better for a loss
    assert representative_arm(pd.DataFrame(by_loss), ["finetune"], 0.5) == "finetune(depth=1)"


def test_a_list_side_and_a_lower_is_better_metric():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.0, "truncate(at=2)": 0.05}, noise=0.005)
    summary, detail = verdict(rows, a=["frozen", "truncate"])
    assert set(detail["arm_a"]) == {"truncate(at=2)"} and summary["verdict"] == Verdict.SUPPORTED
    loss, _ = verdict(rows, a="truncate", metric="log_loss")  # log_loss = 1.2 - auc: lower for truncate
    assert loss["verdict"] == Verdict.SUPPORTED and loss["effect"] > 0


def test_a_strategy_against_one_of_its_own_arms():
    rows = grid_rows({"finetune(depth=1)": 0.0, "finetune(depth=all)": 0.05}, noise=0.005)
    _, detail = verdict(rows, a="finetune", b="finetune(depth=all)")
    assert set(detail["reason"]) == {"both sides are finetune(depth=all)"}


def test_missing_cells_are_named():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05})
    _, detail = verdict([r for r in rows if not (r["arm"] == "frozen" and r["fraction"] == 1.0)])
    assert detail["reason"].iloc[-1] == "no usable cells for a"


def test_claims_and_report_options_do_not_change_run_ids():
    extra = ("report: {metric: accuracy, target: 0.9, alpha: 0.01}\n"
             "claims:\n  - {id: t, a: truncate, b: finetune(depth=all), fractions: [0.5]}\n")
    plain = plan_cells(parse_protocol(protocol_text()), "fingerprint")
    claimed = plan_cells(parse_protocol(protocol_text(extra=extra)), "fingerprint")
    assert [cell.run_id for cell in plain] == [cell.run_id for cell in claimed]


INVALID_CLAIMS = [
    ("{id: x, a: truncat, b: scratch}", r"claims\.0\.a: expected a strategy or arm .*got 'truncat' \(did you mean"),
    ("{id: x, a: truncate, b: scratch, fractions: [0.3]}", r"claims\.0\.fractions: expected fractions of .*got 0\.3"),
    ("{id: x, a: truncate, b: scratch, margin: 0.1}", r"claims\.0: margin is only for kind: not_worse"),
    ("{id: x, a: truncate, b: scratch, kind: not_worse}", r"claims\.0: not_worse needs a margin > 0"),
    ("{id: x, a: [truncate, frozen], b: [frozen]}", r"claims\.0\.b: a and b must not share"),
    ("{id: x, a: [], b: scratch}", r"claims\.0\.a: expected an arm, a strategy, or a non-empty list"),
    ("{id: x, a: truncate, b: scratch, metrc: auc}", r"claims\.0\.metrc: unknown field \(did you mean 'metric'\?\)"),
]
INVALID_REPORTS = [
    ("{metric: log_loss}", r"report\.metric: expected one of 'auc', .*got 'log_loss'"),
    ("{mcnemar: [[truncate, finetun]]}", r"report\.mcnemar\.0: .*did you mean 'finetune'"),
    ("{confusion_fraction: 0.3}", r"report\.confusion_fraction: expected one of the fractions"),
    ("{alpah: 0.1}", r"report\.alpah: unknown field \(did you mean 'alpha'\?\)"),
]


@pytest.mark.parametrize("extra, expected", [(f"claims:\n  - {claim}\n", expected) for claim, expected in INVALID_CLAIMS]
                         + [(f"report: {report}\n", expected) for report, expected in INVALID_REPORTS])
def test_invalid_claims_and_report_options_name_line_and_field(extra, expected):
    with pytest.raises(ProtocolError, match=r"^synth\.yaml:\d+: " + expected):
        parse_protocol(protocol_text(extra=extra), "synth.yaml")


def test_protocol_guide_report_and_claims_examples_are_valid():
    text = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "protocol.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    base = next(block for block in blocks if block.startswith("name: truncation"))
    extra = [block for block in blocks if block.startswith(("report:", "claims:"))]
    assert len(extra) == 2
    protocol = parse_protocol(base + "".join(extra), "protocol.md")
    assert protocol.report.target == 0.85 and protocol.claims[0].side("b") == ["finetune(depth=all)"]


def test_an_arm_label_that_is_also_a_strategy_name_means_that_arm_alone():
    rows = []
    for seed in range(3):
        rows.append(cell_row("scratch", 0.5, seed, 0.70, monitor_value=0.60))
        small = cell_row("scratch", 0.5, seed, 0.90, monitor_value=0.90)
        rows.append(small | {"arm": "scratch[cnn-16]", "run_id": f"small-{seed}"})
    cells = pd.DataFrame(rows)
    assert representative_arm(cells, ["scratch"], 0.5) == "scratch"
    assert representative_arm(cells, ["scratch", "scratch[cnn-16]"], 0.5) == "scratch[cnn-16]"


DEPTHS = ["finetune(depth=1)", "finetune(depth=all)"]


def trend_rows(deep_wins_from: float) -> list[dict]:
    """finetune(depth=1) wins on validation below deep_wins_from, finetune(depth=all) from there on."""
    rows = []
    for fraction in FRACTIONS:
        for seed in range(3):
            deep_better = fraction >= deep_wins_from
            rows.append(cell_row(DEPTHS[0], fraction, seed, 0.8, monitor_value=0.7 if deep_better else 0.8))
            rows.append(cell_row(DEPTHS[1], fraction, seed, 0.8, monitor_value=0.8 if deep_better else 0.7))
    return rows


@pytest.mark.parametrize("deep_wins_from, expected", [
    (0.5, Verdict.SUPPORTED),  # shallow with little data, deep with more: the depth grows with data
    (2.0, Verdict.INCONCLUSIVE),  # shallow everywhere: no trend
])
def test_trend_claim_follows_the_arm_validation_picks(deep_wins_from, expected):
    summary, detail = verdict(trend_rows(deep_wins_from), kind="trend", a=DEPTHS, b=None)
    assert summary["verdict"] == expected
    assert summary["metric"] == "kendall_tau" and len(detail) == len(FRACTIONS)
    if expected == Verdict.SUPPORTED:
        assert summary["effect"] > 0.5 and summary["ci_low"] > 0
        assert list(detail["arm_a"]) == [DEPTHS[0], DEPTHS[0], DEPTHS[1], DEPTHS[1]]


def test_reversed_trend_is_contradicted():
    summary, _ = verdict(trend_rows(0.5), kind="trend", a=list(reversed(DEPTHS)), b=None)
    assert summary["verdict"] == Verdict.CONTRADICTED and summary["effect"] < 0


@pytest.mark.parametrize("claim, expected", [
    ({"kind": "trend", "a": "finetune"}, "a trend claim needs a list of at least 2 arms"),
    ({"kind": "trend", "a": ["finetune(depth=1)", "scratch"], "b": "scratch"}, "a trend claim has no b"),
    ({"kind": "trend", "a": ["finetune", "scratch"]}, "a trend claim lists arms, not strategies"),
    ({"a": "scratch"}, "a better claim needs b"),
])
def test_invalid_trend_claims(claim, expected):
    text = protocol_text() + "claims:\n  - " + json.dumps({"id": "c", **claim}) + "\n"
    with pytest.raises(ProtocolError, match=expected):
        parse_protocol(text, "p.yaml")


def simulated_rates(delta: float, seeds: int, claims: int = 2000, margin: float = 0.0) -> dict[str, float]:
    """Verdict shares of the primary test over simulated claims whose per-seed averaged advantage is N(delta, 0.02)."""
    rng = np.random.default_rng(seeds)
    verdicts = [pooled_decision(rng.normal(delta, 0.02, seeds), margin, 0.05, resamples=99)[0]
                for _ in range(claims)]
    return {verdict: verdicts.count(verdict) / claims for verdict in (Verdict.SUPPORTED, Verdict.CONTRADICTED)}


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_the_primary_test_keeps_false_support_at_alpha(seeds):
    null = simulated_rates(0.0, seeds)
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)
    assert null[Verdict.SUPPORTED] <= bound and null[Verdict.SUPPORTED] + null[Verdict.CONTRADICTED] <= bound
    at_margin = simulated_rates(-0.01, seeds, margin=0.01)  # not worse claim when a is worse by exactly the margin
    assert at_margin[Verdict.SUPPORTED] <= bound


@pytest.mark.slow
def test_the_primary_test_gains_power_with_seeds():
    power = [simulated_rates(0.02, seeds)[Verdict.SUPPORTED] for seeds in (3, 5, 10)]  # true advantage of one seed sd
    assert power[0] < power[1] < power[2] and power[2] > 0.75


def test_a_claim_over_fractions_is_decided_by_all_of_its_data():
    """Every fraction leans the same way, none is significant after Holm on its own: the pooled test decides."""
    rows = grid_rows({"scratch": 0.0, "frozen": 0.03}, seeds=5, noise=0.02, seed=4)
    summary, detail = verdict(rows)
    assert summary["verdict"] == Verdict.SUPPORTED, summary["reason"]
    assert summary["p"] < 0.05 and summary["ci_low"] > 0
    assert (detail["verdict"] != Verdict.SUPPORTED).any() and "fraction by fraction (Holm)" in summary["reason"]


def report_page_section(title: str) -> str:
    """The text of the report page's section under `## title`, up to the next heading."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "report.md").read_text()
    return re.split(r"^#+ ", page.split(f"\n## {title}\n", 1)[1], flags=re.MULTILINE)[0]


def test_report_page_states_the_rule_the_code_applies():
    first_paragraph = report_page_section("How a claim gets its verdict").split("\n\n")[0]
    assert " ".join(first_paragraph.split()) == " ".join(RULE.split())


def test_the_rule_states_the_numbers_the_verdicts_use():
    assert f"including fewer than {MIN_PAIRS} seeds" in RULE
    assert f"the {CONFIDENCE:.0%} percentile bootstrap interval" in RULE
    seeds = wilcoxon_seeds(ALPHA)
    assert wilcoxon_smallest_p(seeds) <= ALPHA < wilcoxon_smallest_p(seeds - 1)
    assert f"so it decides from {seeds} seeds at alpha {ALPHA:g})" in RULE
    assert ALPHA == ReportSpec().alpha
