"""DeLong's test of two correlated AUCs: two models scored on the same test images.

DeLong, DeLong & Clarke-Pearson (Biometrics 44:837, 1988) estimate each AUC as a Mann-Whitney statistic and its
variance from the placement values (structural components) of the images; Sun & Xu (IEEE Signal Processing Letters
21:1389, 2014) compute those placements from midranks, in O(n log n), with ties counted as half.

Binary tasks only: labels are 0/1 and scores are each image's score for class 1. For more than two classes nothing
is offered here; callers test one class against the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from study.analysis.stats import CONFIDENCE


@dataclass(frozen=True)
class DelongResult:
    """Paired comparison of two AUCs on the same images: difference a - b, its 95% normal interval and the test."""

    auc_a: float
    auc_b: float
    difference: float
    standard_error: float
    z: float
    p: float
    ci_low: float
    ci_high: float


def delong_auc_variance(labels, scores) -> tuple[float, float]:
    """AUC of class 1 scored by `scores` against 0/1 `labels`, and DeLong's estimate of its variance."""
    is_positive = _positive_mask(labels, scores)
    positive_placements, negative_placements = _placements(is_positive, _score_vector(scores))
    return float(positive_placements.mean()), _placement_variance(positive_placements, negative_placements)


def delong_test(labels, scores_a, scores_b) -> DelongResult:
    """DeLong's paired test of AUC(scores_a) = AUC(scores_b) on the same images, two-sided, normal approximation.

    Identical score vectors give difference 0, standard error 0, z = 0 and p = 1.
    """
    is_positive = _positive_mask(labels, scores_a, scores_b)
    positives_a, negatives_a = _placements(is_positive, _score_vector(scores_a))
    positives_b, negatives_b = _placements(is_positive, _score_vector(scores_b))
    auc_a, auc_b = float(positives_a.mean()), float(positives_b.mean())
    difference = auc_a - auc_b
    # Var(A - B) = Var A + Var B - 2 Cov(A, B), taken as the variance of the placement differences: never negative
    standard_error = math.sqrt(_placement_variance(positives_a - positives_b, negatives_a - negatives_b))
    z = _z_score(difference, standard_error)
    margin = float(stats.norm.ppf(0.5 + CONFIDENCE / 2)) * standard_error
    return DelongResult(
        auc_a=auc_a,
        auc_b=auc_b,
        difference=difference,
        standard_error=standard_error,
        z=z,
        p=float(2 * stats.norm.sf(abs(z))),
        ci_low=difference - margin,
        ci_high=difference + margin,
    )


def _positive_mask(labels, *score_vectors) -> np.ndarray:
    """Labels as a boolean mask of class 1, after checking they are binary and match every score vector in length."""
    labels = np.asarray(labels)
    for scores in score_vectors:
        if np.shape(scores) != labels.shape:
            raise ValueError(f"labels have shape {labels.shape} but scores have shape {np.shape(scores)}")
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be a vector of 0/1; for more classes, test one class against the rest")
    is_positive = labels == 1
    if is_positive.all() or not is_positive.any():
        raise ValueError("labels hold only one class; an AUC needs images of both")
    if min(is_positive.sum(), (~is_positive).sum()) < 2:
        raise ValueError("DeLong's variance needs at least two images of each class")
    return is_positive


def _score_vector(scores) -> np.ndarray:
    return np.asarray(scores, dtype=float)


def _placements(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sun & Xu's midrank placements: per positive, the share of negatives scored below it; per negative, the share
    of positives scored above it (ties count half). The AUC is the mean of either."""
    positive_scores, negative_scores = scores[is_positive], scores[~is_positive]
    n_positive, n_negative = len(positive_scores), len(negative_scores)
    pooled_ranks = stats.rankdata(np.concatenate([positive_scores, negative_scores]))
    negatives_below = pooled_ranks[:n_positive] - stats.rankdata(positive_scores)
    positives_below = pooled_ranks[n_positive:] - stats.rankdata(negative_scores)
    return negatives_below / n_negative, 1.0 - positives_below / n_positive


def _placement_variance(positive_placements: np.ndarray, negative_placements: np.ndarray) -> float:
    """DeLong's variance: S10 / m + S01 / n, sample variances of the placements over m positives and n negatives."""
    return float(
        np.var(positive_placements, ddof=1) / len(positive_placements)
        + np.var(negative_placements, ddof=1) / len(negative_placements)
    )


def _z_score(difference: float, standard_error: float) -> float:
    """difference / standard_error, with 0 / 0 taken as 0 (no difference) and d / 0 as an infinite z."""
    if standard_error > 0:
        return difference / standard_error
    return math.copysign(math.inf, difference) if difference else 0.0
