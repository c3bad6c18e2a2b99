"""Adding seeds until the claims are decided: the boundaries against published values, the error rate and power
by simulation, and a real run that adds seeds look by look, resumes, and reports its looks."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers.commands import study_command
from helpers.protocols import protocol_file_text

from study.analysis.sequential import (
    EVERY_CLAIM_DECIDED,
    LAST_LOOK_MADE,
    SequentialPlan,
    boundaries,
    nominal_levels,
    operating_characteristics,
)
from study.cli import main
from study.core.vocabulary import Verdict
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
    assert null_claims["seeds"] > 9.5  # with no effect nearly every claim runs to the last look


def test_until_decided_needs_claims_and_the_seed_options_need_it(tmp_path, capsys):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(TWO_ARMS.replace("claims:", "unused:").split("unused:")[0])
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "r"), "--until-decided"]) == 1
    assert "--until-decided needs claims" in capsys.readouterr().err
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "r"), "--max-seeds", "5"]) == 1
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
    assert "looks planned at 2, 3, 4 seeds" in first.stdout
    assert "look 1 of 3 at 2 seeds: undecided: transfer" in first.stdout  # 2 seeds never decide a claim
    store = ResultStore(tmp_path / "results", "looks")
    record = json.loads((store.root / "sequential.json").read_text())
    looks = record["looks"]
    assert looks in ([2, 3], [2, 3, 4])  # seeds were added beyond the protocol's two
    assert record["stopped"] == (EVERY_CLAIM_DECIDED if looks == [2, 3] else LAST_LOOK_MADE)
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
    assert "Looks were planned at 2, 3, 4 seeds" in report and f"It stopped because {record['stopped']}" in report
    table = pd.read_csv(tmp_path / "report" / "looks" / "tables" / "claim_looks.csv")
    assert list(table["seeds"]) == looks and list(table["decided_here"]) == [False] * (len(looks) - 1) + [
        record["stopped"] == EVERY_CLAIM_DECIDED]
