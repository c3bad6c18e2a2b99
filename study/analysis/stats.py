"""The statistical tests of the report: thin wrappers over scipy and statsmodels with the edge cases decided.

Every function takes plain arrays and returns plain numbers, so each is tested against scipy/statsmodels on fixed
inputs. Conventions: p-values are two-sided; NaN means "no test possible" (too few values, zero variance).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # fixed, so every rebuild of a report draws the same resamples
_TIES = 1e-12  # differences whose spread is below this (relative to their size) have zero variance


@dataclass(frozen=True)
class Paired:
    """Paired comparison of two samples (differences a - b): effect, interval and both tests."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    t_p: float
    w_stat: float
    w_p: float


def paired_comparison(
    a, b, shift: float = 0.0, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Paired:
    """Compare paired samples a and b: mean of a - b with its bootstrap interval, paired t-test and Wilcoxon test.

    The tests are of the differences a - b + shift against zero (a shift turns "not worse than b by more than a
    margin" into "a + margin better than b"); the mean and interval are of a - b, unshifted.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff = diff[~np.isnan(diff)]
    low, high = bootstrap_mean_ci(diff, resamples, seed)
    t_stat, t_p = paired_t(diff + shift)
    w_stat, w_p = wilcoxon(diff + shift)
    mean = float(diff.mean()) if len(diff) else math.nan
    return Paired(len(diff), mean, low, high, t_stat, t_p, w_stat, w_p)


def bootstrap_mean_ci(values, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (scipy.stats.bootstrap); NaN for fewer than 2 values.

    Percentile rather than BCa: BCa is undefined when all resampled means coincide and unstable with a handful of
    seeds, which is the usual case here.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _zero_variance(diff: np.ndarray) -> bool:
    return np.ptp(diff) <= _TIES * max(1.0, float(np.abs(diff).max()))


def paired_t(diff) -> tuple[float, float]:
    """One-sample t-test of paired differences against 0 (= scipy.stats.ttest_rel).

    All-zero differences give p = 1; constant non-zero ones (zero variance) and fewer than 2 values give NaN.
    """
    diff = np.asarray(diff, dtype=float)
    if len(diff) < 2:
        return math.nan, math.nan
    if _zero_variance(diff):
        return (0.0, 1.0) if np.all(diff == 0) else (math.nan, math.nan)
    result = stats.ttest_1samp(diff, 0.0)
    return float(result.statistic), float(result.pvalue)


def wilcoxon(diff) -> tuple[float, float]:
    """Wilcoxon signed-rank test of paired differences (scipy, exact for small samples, zeros dropped).

    All-zero differences give p = 1; an empty sample gives NaN.
    """
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return math.nan, math.nan
    if np.all(diff == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.wilcoxon(diff)
    return float(result.statistic), float(result.pvalue)


def wilcoxon_smallest_p(n: int) -> float:
    """The smallest two-sided exact p-value a Wilcoxon test of n non-zero differences can give: 2 / 2**n."""
    return 2.0 / 2.0**n if n > 0 else 1.0


def wilcoxon_seeds(alpha: float) -> int:
    """The fewest non-zero differences with which a two-sided Wilcoxon test can reach alpha (2 / 2**n <= alpha)."""
    n = 1
    while wilcoxon_smallest_p(n) > alpha:
        n += 1
    return n


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values: the k-th smallest of m p-values times m - k + 1, made non-decreasing and capped at 1
    (the numbers of statsmodels' multipletests(method="holm"), without its gc.collect() on every call, which costs
    more than the adjustment); NaN entries stay NaN and do not count."""
    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(pvalues.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(pvalues))
    if len(finite):
        order = finite[np.argsort(pvalues[finite])]
        raw = pvalues[order] * np.arange(len(order), 0, -1)
        adjusted[order] = np.minimum(np.maximum.accumulate(raw), 1.0)
    return adjusted


def add_holm(family: list[dict], columns) -> None:
    """Holm over one family of rows: each row gets `<column>_holm`, the column's p-value adjusted over the family
    (a row without the column counts as NaN), for each of columns."""
    for column in columns:
        for row, adjusted in zip(family, holm([row.get(column, math.nan) for row in family])):
            row[f"{column}_holm"] = adjusted


def average_ranks(matrix, higher_is_better: bool = True) -> np.ndarray:
    """Mean rank of each column over the rows (blocks), rank 1 the best, ties sharing their average rank."""
    matrix = np.asarray(matrix, dtype=float)
    ranks = stats.rankdata(-matrix if higher_is_better else matrix, axis=1)
    return ranks.mean(axis=0)


def friedman(matrix) -> tuple[float, float]:
    """Friedman chi-square test over a blocks x treatments matrix (scipy.stats.friedmanchisquare)."""
    matrix = np.asarray(matrix, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.friedmanchisquare(*matrix.T)
    return float(result.statistic), float(result.pvalue)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k treatments: the studentized range quantile over sqrt(2)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of mean ranks for k treatments over n blocks (Demsar 2006)."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


@dataclass(frozen=True)
class McNemar:
    """Per-image agreement of two classifiers on one test set, with McNemar's exact p-value."""

    both_correct: int
    only_a: int
    only_b: int
    both_wrong: int
    p: float


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """McNemar's exact (binomial) test on paired per-image correctness (statsmodels); p = 1 with no discordance."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    p = 1.0 if table[0][1] + table[1][0] == 0 else float(mcnemar(table, exact=True).pvalue)
    return McNemar(table[0][0], table[0][1], table[1][0], table[1][1], p)
