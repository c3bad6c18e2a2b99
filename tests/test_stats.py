"""The statistical functions against scipy/statsmodels on fixed inputs and published tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from study.analysis.stats import (
    add_holm,
    average_ranks,
    bootstrap_mean_ci,
    friedman,
    holm,
    mcnemar_exact,
    nemenyi_cd,
    nemenyi_q,
    paired_comparison,
    paired_t,
    wilcoxon,
    wilcoxon_seeds,
    wilcoxon_smallest_p,
)

A = np.array([0.81, 0.78, 0.84, 0.80, 0.83, 0.79, 0.85])
B = np.array([0.76, 0.77, 0.79, 0.74, 0.80, 0.78, 0.79])


def test_paired_comparison_matches_scipy():
    result = paired_comparison(A, B)
    t = stats.ttest_rel(A, B)
    w = stats.wilcoxon(A - B)
    assert result.n == 7
    assert result.mean_diff == pytest.approx(np.mean(A - B), abs=1e-15)
    assert (result.t_stat, result.t_p) == pytest.approx((t.statistic, t.pvalue), rel=1e-12)
    assert (result.w_stat, result.w_p) == pytest.approx((w.statistic, w.pvalue), rel=1e-12)
    assert result.w_p == pytest.approx(2 / 2**7)  # every difference positive: the exact test's smallest p
    assert result.ci_low < result.mean_diff < result.ci_high


def test_shift_tests_a_plus_margin_but_reports_the_plain_difference():
    shifted = paired_comparison(A, B, shift=0.02)
    plain = paired_comparison(A, B)
    assert shifted.mean_diff == plain.mean_diff and shifted.ci_low == plain.ci_low
    assert shifted.t_p == pytest.approx(stats.ttest_1samp(A - B + 0.02, 0).pvalue, rel=1e-12)


def test_bootstrap_interval_is_scipy_percentile_with_a_fixed_seed():
    values = A - B
    expected = stats.bootstrap((values,), np.mean, n_resamples=9999, method="percentile",
                               rng=np.random.default_rng(0)).confidence_interval
    assert bootstrap_mean_ci(values) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert bootstrap_mean_ci(values) == bootstrap_mean_ci(values)  # reproducible
    assert all(math.isnan(v) for v in bootstrap_mean_ci([0.3]))
    assert bootstrap_mean_ci([0.2, 0.2, 0.2]) == (0.2, 0.2)


def test_edge_cases_of_the_tests():
    assert paired_t([0.0, 0.0, 0.0]) == (0.0, 1.0)
    assert all(math.isnan(v) for v in paired_t([0.1, 0.1, 0.1]))  # constant non-zero: no variance, no t-test
    assert all(math.isnan(v) for v in paired_t([0.1]))
    assert wilcoxon([0.0, 0.0]) == (0.0, 1.0)
    assert all(math.isnan(v) for v in wilcoxon([]))


@pytest.mark.parametrize("n, p", [(3, 0.25), (5, 0.0625), (6, 0.03125)])
def test_smallest_wilcoxon_p_is_what_scipy_gives_for_all_positive(n, p):
    assert wilcoxon_smallest_p(n) == p
    assert stats.wilcoxon(np.arange(1, n + 1) / 10).pvalue == pytest.approx(p)


def test_holm_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2])
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    adjusted = holm(p)
    assert np.isnan(adjusted[2])
    assert adjusted[[0, 1, 3, 4]] == pytest.approx(expected)
    assert adjusted[[0, 1, 3]] == pytest.approx([0.04, 0.09, 0.09])
    assert holm([]).shape == (0,)


def test_add_holm_adjusts_each_column_over_the_family_and_counts_a_missing_p_as_nan():
    family = [{"t_p": 0.01, "w_p": 0.2}, {"t_p": 0.04}, {"t_p": 0.03, "w_p": 0.05}]
    add_holm(family, ("t_p", "w_p"))
    assert [row["t_p_holm"] for row in family] == pytest.approx(multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert family[0]["w_p_holm"] == pytest.approx(0.2) and family[2]["w_p_holm"] == pytest.approx(0.1)
    assert math.isnan(family[1]["w_p_holm"]) and "w_p" not in family[1]


@pytest.mark.parametrize("alpha, seeds", [(0.05, 6), (0.01, 8), (0.5, 2), (1.0, 1)])
def test_wilcoxon_seeds_is_the_fewest_that_can_reach_alpha(alpha, seeds):
    assert wilcoxon_seeds(alpha) == seeds
    assert wilcoxon_smallest_p(seeds) <= alpha and (seeds == 1 or wilcoxon_smallest_p(seeds - 1) > alpha)


def test_friedman_and_ranks_match_scipy():
    matrix = np.array([[0.80, 0.75, 0.70], [0.82, 0.79, 0.71], [0.78, 0.80, 0.69], [0.85, 0.77, 0.72]])
    expected = stats.friedmanchisquare(*matrix.T)
    assert friedman(matrix) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    assert average_ranks(matrix).tolist() == [1.25, 1.75, 3.0]
    assert average_ranks(matrix, higher_is_better=False).tolist() == [2.75, 2.25, 1.0]
    assert average_ranks([[0.5, 0.5, 0.1]]).tolist() == [1.5, 1.5, 3.0]


@pytest.mark.parametrize("alpha, table", [
    (0.05, [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]),
    (0.10, [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]),
])
def test_nemenyi_critical_values_match_demsar_table(alpha, table):
    assert [round(nemenyi_q(k, alpha), 3) for k in range(2, 11)] == pytest.approx(table, abs=1e-3)


def test_nemenyi_cd_of_demsars_example():
    # Demsar 2006, section 3.2.2: four classifiers on 14 data sets, CD = 1.25 at alpha 0.05
    assert nemenyi_cd(4, 14, 0.05) == pytest.approx(1.25, abs=0.005)


def test_mcnemar_exact_matches_statsmodels_and_the_binomial():
    a = np.array([True] * 30 + [True] * 9 + [False] * 1 + [False] * 5)
    b = np.array([True] * 30 + [False] * 9 + [True] * 1 + [False] * 5)
    result = mcnemar_exact(a, b)
    assert (result.both_correct, result.only_a, result.only_b, result.both_wrong) == (30, 9, 1, 5)
    assert result.p == pytest.approx(mcnemar([[30, 9], [1, 5]], exact=True).pvalue)
    assert result.p == pytest.approx(2 * 11 / 1024)  # two-sided binomial, 1 of 10 discordant pairs
    assert mcnemar_exact(a, a).p == 1.0


@pytest.mark.parametrize("seed", range(12))
def test_swapping_the_sides_mirrors_the_comparison(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    a, b = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    if seed % 3 == 0:
        b = a.copy()  # no difference at all
    forward, backward = paired_comparison(a, b, resamples=999), paired_comparison(b, a, resamples=999)
    assert backward.mean_diff == pytest.approx(-forward.mean_diff, abs=1e-12)
    assert forward.t_p == pytest.approx(backward.t_p, nan_ok=True)
    assert forward.w_p == pytest.approx(backward.w_p, nan_ok=True)
    assert forward.ci_low <= forward.mean_diff + 1e-12 and forward.mean_diff <= forward.ci_high + 1e-12


def test_holm_equals_statsmodels_on_random_and_tied_pvalues():
    rng = np.random.default_rng(3)
    for m in (1, 2, 5, 21, 60):
        p = np.round(rng.uniform(0, 0.3, m), 2)  # rounding makes ties
        assert np.array_equal(holm(p), multipletests(p, method="holm")[1])
