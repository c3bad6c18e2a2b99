"""Before anything trains, validate and plan say whether the seeds can decide each claim; with a stored pilot, plan
says how many seeds each claim needs at 80% power."""

from __future__ import annotations

import math
import warnings

import pytest
from helpers.synthetic import as_planned, grid_rows, protocol_text, write_protocol, write_store
from scipy.stats import nct, t

from study.analysis.claims import MIN_PAIRS
from study.analysis.decidability import capacity, paired_t_power, seeds_needed
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
    # paired (one-sample) t-test, alpha 0.05 two-sided, power 0.8, as G*Power 3 gives it ("Means: difference from
    # constant"; Faul et al. 2007, effect sizes after Cohen 1988): d = 1.0 -> N = 10, d = 0.5 -> 34 (actual power
    # 0.8078), d = 0.8 -> 15 (0.8213), d = 0.2 -> 199 (0.8017); each checked below against scipy's noncentral t
    assert seeds_needed(0.02, 0.02, 0.0, 0.05) == 10
    assert seeds_needed(0.01, 0.02, 0.0, 0.05) == 34
    assert seeds_needed(0.016, 0.02, 0.0, 0.05) == 15
    assert seeds_needed(0.004, 0.02, 0.0, 0.05) == 199
    assert seeds_needed(-0.01, 0.02, 0.02, 0.05) == 34  # not worse within 0.02: the distance to -margin counts
    assert seeds_needed(0.0, 0.02, 0.0, 0.05) is None


def noncentral_t_tails(size: float, pairs: int) -> tuple[float, float]:
    """The two tails of scipy's noncentral t beyond the two-sided paired t-test's critical values at alpha 0.05:
    their sum is the test's power."""
    df, shift = pairs - 1, size * math.sqrt(pairs)
    critical = t.isf(0.025, df)
    return nct.sf(critical, df, shift), nct.cdf(-critical, df, shift)


@pytest.mark.parametrize("size, needed", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10), (2.0, 5), (3.0, 4), (5.0, 3)])
def test_the_seeds_needed_are_the_fewest_that_reach_80_percent_power(size, needed):
    assert seeds_needed(size, 1.0, 0.0, 0.05) == needed
    assert sum(noncentral_t_tails(size, needed)) >= 0.8 > sum(noncentral_t_tails(size, needed - 1))


@pytest.mark.parametrize("size", [8.0, 10.0, 20.0, 50.0])
def test_a_strong_effect_needs_the_fewest_seeds_a_verdict_takes(size):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        needed = seeds_needed(size * 0.01, 0.01, 0.0, 0.05)  # statsmodels' root finder returns NaN for these
    assert needed == MIN_PAIRS and not caught
    assert noncentral_t_tails(size, MIN_PAIRS)[0] >= 0.8  # the upper tail alone (scipy loses the lower one here)


def test_the_power_integral_matches_scipys_noncentral_t_and_is_alpha_without_an_effect():
    for size in (0.05, 0.3, 1.0):
        for pairs in (3, 8, 30, 300):
            assert paired_t_power(size, pairs, 0.05) == pytest.approx(sum(noncentral_t_tails(size, pairs)), abs=1e-8)
    assert paired_t_power(0.0, 7, 0.05) == pytest.approx(0.05, abs=1e-9)
    assert seeds_needed(1e-4, 1.0, 0.0, 0.05) is None  # over MAX_SEEDS


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


def test_plan_gives_a_strong_pilot_effect_the_fewest_seeds(tmp_path, capsys):
    protocol = write_protocol(tmp_path, seeds=3, extra=CLAIMS)
    write_store(tmp_path / "results", as_planned(grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=3, noise=0.01),
                                                 protocol))
    assert main(["plan", str(protocol), "--results-dir", str(tmp_path / "results")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.strip().startswith("claim frozen-beats-scratch: supported so far"))
    assert f"about {MIN_PAIRS} seeds decide it with 80% power" in line  # effect size above 20
