"""Before anything trains, validate and plan say whether the seeds can decide each claim; with a stored pilot, plan
says how many seeds each claim needs at 80% power."""

from __future__ import annotations

import warnings

from helpers.synthetic import as_planned, grid_rows, protocol_text, write_protocol, write_store

from study.analysis.decidability import capacity, seeds_needed
from study.cli import main
from study.protocol.schema import parse_protocol

CLAIMS = """\
claims:
  - {id: frozen-beats-scratch, a: frozen, b: scratch}
  - {id: depth-trend, kind: trend, a: ["finetune(depth=1)", "finetune(depth=all)"]}
"""


def test_too_few_seeds_are_refused_up_front():
    two = parse_protocol(protocol_text(seeds=2, extra=CLAIMS))
    decidable, line = capacity(two.claims[0], two)
    assert not decidable and "cannot be decided with 2 seed(s)" in line
    assert capacity(two.claims[1], two)[0]  # 2 seeds x 4 fractions = 8 picks: a trend can be decided
    three = parse_protocol(protocol_text(seeds=3, extra=CLAIMS))
    decidable, line = capacity(three.claims[0], three)
    assert decidable and "cannot reach alpha" in line and "0.25" in line
    six = parse_protocol(protocol_text(seeds=6, extra=CLAIMS))
    assert "confirms it (smallest p 0.0312)" in capacity(six.claims[0], six)[1]
    one = parse_protocol(protocol_text(fractions=(0.5, 1.0), seeds=2, extra=CLAIMS))
    assert not capacity(one.claims[1], one)[0]  # 2 fractions cannot show a trend


def test_seeds_needed_match_cohens_power_tables():
    # paired t-test, alpha 0.05 two-sided, power 0.8, as G*Power gives it: d = 1.0 -> n = 10 (9.94), d = 0.5 -> 34 (33.4)
    assert seeds_needed(0.02, 0.02, 0.0, 0.05) == 10
    assert seeds_needed(0.01, 0.02, 0.0, 0.05) == 34
    assert seeds_needed(-0.01, 0.02, 0.02, 0.05) == 34  # not worse within 0.02: the distance to -margin counts
    assert seeds_needed(0.0, 0.02, 0.0, 0.05) is None


def test_a_power_search_that_does_not_converge_warns_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seeds_needed(0.2, 0.01, 0.0, 0.05)  # effect size 20: statsmodels' search fails to converge
    assert not caught


def test_validate_warns_and_plan_estimates_from_a_pilot(tmp_path, capsys):
    protocol = write_protocol(tmp_path, seeds=2, extra=CLAIMS)
    assert main(["validate", str(protocol)]) == 0
    out = capsys.readouterr().out
    assert "warning: claim frozen-beats-scratch cannot be decided with 2 seed(s)" in out
    pilot = grid_rows({"scratch": 0.0, "frozen": 0.03}, seeds=2, noise=0.01)  # the protocol's own two seeds
    write_store(tmp_path / "results", as_planned(pilot, protocol))
    assert main(["plan", str(protocol), "--results-dir", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "warning: claim frozen-beats-scratch cannot be decided" in out and "(a pilot)" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("claim frozen-beats-scratch:"))
    assert "over 2 seeds" in line and "seeds decide it with 80% power" in line


def test_a_target_with_too_few_fractions_for_a_fit_is_warned_by_validate(tmp_path, capsys):
    few = write_protocol(tmp_path, name="few", fractions=(0.5, 1.0), extra="report: {target: 0.85}\n")
    assert main(["validate", str(few)]) == 0
    out = capsys.readouterr().out
    assert "warning: report.target 0.85: 2 fraction(s) give no fitted training size" in out
    assert "needs 4 or more fractions" in out
    enough = write_protocol(tmp_path, name="enough", extra="report: {target: 0.85}\n")  # four fractions
    assert main(["validate", str(enough)]) == 0
    assert "report.target" not in capsys.readouterr().out
