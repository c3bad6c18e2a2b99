"""Adding seeds until the claims are decided: the boundaries against published values, the error rate and power
by simulation, and a real run that adds seeds look by look, resumes, and reports its looks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.protocols import protocol_file_text

from scipy.stats import norm

from study.analysis.sequential import (
    EVERY_CLAIM_DECIDED,
    FUTILITY_POWER,
    LAST_LOOK_MADE,
    NO_CLAIM_OPEN,
    LookTest,
    SequentialPlan,
    SequentialRecord,
    boundaries,
    claim_reads,
    first_decision,
    nominal_levels,
    operating_characteristics,
    predictive_power,
    record_for,
    spent,
    study_cells,
    targets,
)
from study.cli import main
from study.runner.inputs import open_study
from study.core.vocabulary import Verdict
from study.protocol.schema import parse_protocol
from study.store.results import ResultStore


@pytest.mark.parametrize("information, published", [
    # Lan-DeMets O'Brien-Fleming-type spending, two-sided alpha 0.05 (0.025 per side): DeMets & Lan (1994),
    # Stat Med 13:1341, and R's ldbounds / gsDesign (sfLDOF) for five equally spaced looks; two looks at 0.5 and 1.
    ([0.2, 0.4, 0.6, 0.8, 1.0], [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]),
    ([0.5, 1.0], [2.9626, 1.9686]),
    ([1.0], [1.9600]),
])
def test_boundaries_match_published_values(information, published):
    assert boundaries(information, 0.05) == pytest.approx(published, abs=2e-4)


def test_one_look_is_the_fixed_design():
    assert nominal_levels([1.0], 0.05) == pytest.approx([0.05])
    plan = SequentialPlan([0, 1, 2], max_seeds=3)
    assert plan.counts() == [3] and plan.levels(0.05) == pytest.approx([0.05])


def test_looks_and_added_seeds():
    plan = SequentialPlan([0, 1, 2], max_seeds=10, seeds_per_round=2)
    assert plan.counts() == [3, 5, 7, 9, 10]
    assert plan.seeds(5) == [0, 1, 2, 3, 4]
    levels = plan.levels(0.05)
    assert all(a < b for a, b in zip(levels, levels[1:])) and levels[-1] < 0.05
    assert SequentialPlan([4, 9], max_seeds=4, seeds_per_round=1).seeds(4) == [4, 9, 10, 11]
    with pytest.raises(ValueError, match="below the protocol's 3 seeds"):
        SequentialPlan([0, 1, 2], max_seeds=2)


LOOKS = SequentialPlan([0, 1, 2], max_seeds=10, seeds_per_round=2)  # looks at 3, 5, 7, 9 and 10 seeds


@pytest.fixture(scope="module")
def null_claims() -> dict:
    return operating_characteristics(LOOKS, 0.0, claims=2000)


@pytest.mark.slow
def test_the_sequential_procedure_keeps_false_support_at_alpha(null_claims):
    assert null_claims[Verdict.SUPPORTED] <= 0.05 / 2 + 0.01 and null_claims[Verdict.CONTRADICTED] <= 0.05 / 2 + 0.01
    assert null_claims[Verdict.SUPPORTED] + null_claims[Verdict.CONTRADICTED] <= 0.05 + 0.01


@pytest.mark.slow
def test_the_sequential_procedure_stops_early_when_the_effect_is_large(null_claims):
    strong = operating_characteristics(LOOKS, 2.0, claims=500)  # a true advantage of two seed spreads
    assert strong[Verdict.SUPPORTED] > 0.95
    assert strong["seeds"] < 8  # most claims are decided before the last look
    assert strong["futile"] == 0


@pytest.mark.slow
def test_futility_stops_hopeless_claims_without_adding_false_verdicts_or_losing_power(null_claims):
    without = operating_characteristics(LOOKS, 0.0, claims=2000, futility=False)
    assert without["seeds"] > 9.5  # with no effect nearly every claim would run to the last look
    assert null_claims["futile"] > 0.7 and null_claims["seeds"] < 7.5  # futility stops most of them early
    for verdict in (Verdict.SUPPORTED, Verdict.CONTRADICTED):  # non-binding: stopping only removes decisions
        assert null_claims[verdict] <= without[verdict]
    moderate = {futility: operating_characteristics(LOOKS, 1.0, claims=600, futility=futility)
                for futility in (True, False)}
    assert moderate[True][Verdict.SUPPORTED] >= moderate[False][Verdict.SUPPORTED] - 0.02  # power kept
    assert moderate[True]["seeds"] < moderate[False]["seeds"]


def test_predictive_power_matches_its_definition_by_simulation():
    """PP = P(|B(1)| > c | z at t), the effect drawn from its flat-prior posterior N(z / sqrt(t), 1 / t)."""
    rng = np.random.default_rng(0)
    for p, t, c in [(0.5, 0.3, 2.07), (0.05, 0.7, 2.0), (0.9, 0.5, 1.96), (0.2, 0.9, 2.03)]:
        z = norm.isf(p / 2)
        drift = rng.normal(z / np.sqrt(t), np.sqrt(1 / t), 400_000)
        final = z * np.sqrt(t) + drift * (1 - t) + rng.normal(0, np.sqrt(1 - t), drift.size)
        assert predictive_power(p, t, c) == pytest.approx(np.mean(np.abs(final) > c), abs=0.004)
    # no evidence at half the information: the chance of a decision is the fixed design's alpha
    assert predictive_power(1.0, 0.5, norm.isf(0.025)) == pytest.approx(0.05, abs=1e-9)
    assert np.isnan(predictive_power(0.5, 1.0, 1.96))


def test_a_look_too_small_to_decide_is_never_judged_futile():
    plan = SequentialPlan([0, 1, 2], max_seeds=5, seeds_per_round=1)
    rows = first_decision(lambda count, level: LookTest(Verdict.INCONCLUSIVE, 0.99, 0.0, count - 1), plan.counts(),
                          plan, 0.05)  # one pair of each look dropped (a degenerate cell)
    assert [row["futile"] for row in rows] == [False, True]  # 2 pairs: not judged; 3 pairs: p 0.99 is hopeless
    assert np.isnan(rows[0]["predictive_power"]) and rows[1]["predictive_power"] < FUTILITY_POWER


TARGETED = protocol_file_text("sequential_targeted")


def test_a_claim_reads_its_arms_and_a_strategy_name_all_of_its_arms_at_its_fractions():
    protocol = parse_protocol(TARGETED)
    by_id = {claim.id: claim for claim in protocol.claims}
    assert claim_reads(by_id["shallow"], protocol) == {("finetune(depth=1)", 1.0), ("scratch", 1.0)}
    assert claim_reads(by_id["best-finetune"], protocol) == {
        (arm, fraction) for arm in ("finetune(depth=1)", "finetune(depth=all)", "scratch") for fraction in (0.5, 1.0)}
    assert targets(["shallow"], protocol) == [("scratch", 1.0), ("finetune(depth=1)", 1.0)]  # protocol order
    assert targets([], protocol) == []


def test_the_record_plans_every_cell_of_the_protocols_seeds_and_the_targeted_cells_of_added_ones():
    record = SequentialRecord(SequentialPlan([0, 1, 2], max_seeds=5, seeds_per_round=1), looks=[3, 4], seeds_run=5,
                              targets={4: [("scratch", 1.0)], 5: []})
    assert record.trains("finetune(depth=all)", 0.5, 1)  # the protocol's seeds train everything
    assert record.trains("scratch", 1.0, 3) and not record.trains("scratch", 0.5, 3)
    assert not record.trains("scratch", 1.0, 4)  # the last look's seed had no open claim
    assert not record.trains("scratch", 1.0, 7)  # beyond the plan
    again = SequentialRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    old = record.to_dict()
    del old["targets"]  # a record written before targeted looks: every added seed trained every cell
    assert SequentialRecord.from_dict(old).trains("scratch", 0.5, 4)


def test_a_protocol_with_two_seeds_looks_first_at_three_and_still_spends_exactly_alpha(tmp_path, capsys):
    plan = SequentialPlan([0, 1], max_seeds=10, seeds_per_round=2)
    assert plan.counts() == [3, 5, 7, 9, 10] == LOOKS.counts()  # no look at 2 seeds, which could decide nothing
    assert plan.levels(0.05) == LOOKS.levels(0.05)
    information = plan.information()
    assert information[0] == 0.3 and spent(information[-1], 0.05) == pytest.approx(0.05)
    paths = np.cumsum(np.random.default_rng(1).normal(0, np.sqrt(np.diff([0.0, *information])), (400_000, 5)), axis=1)
    crossed = (np.abs(paths / np.sqrt(information)) > norm.isf(np.array(plan.levels(0.05)) / 2)).any(axis=1)
    assert crossed.mean() == pytest.approx(0.05, abs=0.002)  # the null crosses some look's boundary at rate alpha
    record = SequentialRecord(plan, looks=[3], seeds_run=5, targets={5: [("scratch", 1.0)]})
    assert record.trains("finetune(depth=1)", 0.5, 2)  # the first look's added seed trains every cell
    with pytest.raises(ValueError, match="--max-seeds 2 is below the 3 seeds a claim's test needs"):
        SequentialPlan([0, 1], max_seeds=2)
    protocol = tmp_path / "looks.yaml"
    protocol.write_text(TWO_ARMS)
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "r"), "--dry-run", "--until-decided",
                 "--max-seeds", "4", "--seeds-per-round", "1"]) == 0
    assert "then, until every claim is decided, looks at 3, 4 seeds" in capsys.readouterr().out


def test_a_stored_record_whose_looks_began_below_three_seeds_is_not_read():
    protocol = parse_protocol(TWO_ARMS)
    looks = {"plan": {"base_seeds": [0, 1], "max_seeds": 4, "seeds_per_round": 1}, "seeds_run": 3, "stopped": None}
    assert record_for(protocol, looks | {"looks": [3]}).looks == [3]
    assert record_for(protocol, looks | {"looks": [2, 3]}) is None
    assert record_for(protocol, looks | {"plan": looks["plan"] | {"max_seeds": 2}, "looks": [2]}) is None


def test_the_seeds_an_old_record_added_stay_planned(tmp_path):
    protocol = tmp_path / "looks.yaml"
    protocol.write_text(TWO_ARMS)
    store = ResultStore(tmp_path / "results", "looks")
    store.put_sequential({"plan": {"base_seeds": [0, 1], "max_seeds": 4, "seeds_per_round": 1}, "looks": [2, 3],
                          "seeds_run": 4, "stopped": LAST_LOOK_MADE})  # written when looks could begin at 2 seeds
    study = open_study(protocol, tmp_path / "results", tmp_path / "report", None)
    assert study.record is None  # its verdicts are not read: today's plan looks first at 3 seeds
    assert sorted({cell.seed for cell in study.cells}) == [0, 1, 2, 3]  # but the cells it added are this study's


@pytest.mark.slow
def test_added_seeds_train_only_the_cells_open_claims_read(tmp_path):
    protocol = tmp_path / "targeted.yaml"
    protocol.write_text(TARGETED.replace("  - {id: best-finetune, a: finetune, b: scratch}\n", ""))
    dirs = ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]
    # looks at 3 and 8 seeds: the first adds seed 2 to every cell and, at 3 / 8 of the information, cannot find the
    # claim futile (its predictive power is at least 12%) nor, in practice, decide it (nominal level 0.0005)
    options = ["--until-decided", "--max-seeds", "8", "--seeds-per-round", "5", "--no-progress"]
    first = study_command("run", str(protocol), *dirs, *options)
    assert first.returncode == 0, first.stderr
    assert "seeds up to 8 train 2 of 6 arm x fraction pairs" in first.stdout
    cells = ResultStore(tmp_path / "results", "targeted").cells()
    added = cells[cells["seed"] >= 3]
    assert set(zip(added["arm"], added["fraction"])) == {("finetune(depth=1)", 1.0), ("scratch", 1.0)}
    assert len(cells) == 3 * 3 * 2 + 5 * 2  # the first look's three seeds train every cell
    status = study_command("status", str(protocol), *dirs)
    assert "total: 28 done, 0 failed, 0 pending" in status.stdout  # untargeted cells are not pending
    store = ResultStore(tmp_path / "results", "targeted")
    stamps = {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()}
    again = study_command("run", str(protocol), *dirs, *options)
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()} == stamps  # nothing trained again
    report = (tmp_path / "report" / "targeted" / "report.md").read_text()
    assert "trained only the cells that the claims still open read" in report


def test_until_decided_needs_claims_and_the_seed_options_need_it(tmp_path, capsys):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(TWO_ARMS.replace("claims:", "unused:").split("unused:")[0])
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "r"), "--until-decided"]) == 2
    assert "--until-decided needs claims" in capsys.readouterr().err
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "r"), "--max-seeds", "5"]) == 2
    assert "need --until-decided" in capsys.readouterr().err


TWO_ARMS = protocol_file_text("sequential_two_arms")


@pytest.mark.slow
def test_a_run_adds_seeds_look_by_look_resumes_and_reports_its_looks(tmp_path):
    protocol = tmp_path / "looks.yaml"
    protocol.write_text(TWO_ARMS)
    dirs = ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]
    options = ["--until-decided", "--max-seeds", "4", "--seeds-per-round", "1", "--no-progress"]
    first = study_command("run", str(protocol), *dirs, *options)
    assert first.returncode == 0, first.stderr
    assert "looks planned at 3, 4 seeds" in first.stdout  # the first look needs 3 seeds to decide anything
    assert "look 1 of 2 at 3 seeds: " in first.stdout
    store = ResultStore(tmp_path / "results", "looks")
    record = json.loads((store.root / "sequential.json").read_text())
    looks = record["looks"]
    assert looks in ([3], [3, 4])  # seeds were added beyond the protocol's two
    assert record["stopped"] in ((EVERY_CLAIM_DECIDED, NO_CLAIM_OPEN) if looks == [3] else (LAST_LOOK_MADE,))
    assert sorted(store.cells()["seed"].unique()) == list(range(looks[-1]))
    assert f"{2 * looks[-1]} done, 0 failed, 0 skipped" in first.stdout  # every look's cells counted
    stamps = {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()}

    again = study_command("run", str(protocol), *dirs, *options)
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()} == stamps  # nothing trained again
    assert json.loads((store.root / "sequential.json").read_text()) == record

    status = study_command("status", str(protocol), *dirs)
    assert f"total: {2 * looks[-1]} done, 0 failed, 0 pending" in status.stdout  # the added seeds count as planned
    report = (tmp_path / "report" / "looks" / "report.md").read_text()
    assert "descriptive only, not tested at the looks' nominal levels" in report  # the per-fraction rows
    assert "Looks were planned at 3, 4 seeds" in report and f"It stopped because {record['stopped']}" in report
    table = pd.read_csv(tmp_path / "report" / "looks" / "tables" / "claim_looks.csv")
    assert list(table["seeds"]) == looks and list(table["decided_here"]) == [False] * (len(looks) - 1) + [
        record["stopped"] == EVERY_CLAIM_DECIDED]


@pytest.mark.slow
def test_targeted_looks_and_futility_train_fewer_cells_and_support_as_often():
    cost = study_cells(LOOKS, [0.0, 1.0, 2.0], studies=60)
    assert cost["targeted cells"] < cost["every cell cells"]  # decided claims stop training their arms
    assert cost["targeted and futility cells"] < cost["targeted cells"]  # the claim with no effect stops early
    assert cost["supported with futility"] >= cost["supported without futility"] - 0.02
