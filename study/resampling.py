"""Both sources of noise in one interval: a paired two-level bootstrap over seeds and, within each seed's cells,
over test images, and the probability that a beats b on a new seed and test draw (P(A > B), Bouthillier et al.,
MLSys 2021).

The input is, per fraction and seed, the stored test predictions of a's cell and b's cell, matched by image id. A
replicate draws the seeds with replacement; for each drawn seed and each fraction it draws the test images with
replacement (the same images for a and b, so the pair stays paired) and recomputes both metrics; the replicate's
advantage is the mean over fractions and drawn seeds. P(A > B) is the share of single (seed, test draw) advantages
above zero, ties counted half. Metrics recomputed from predictions: auc (macro one-vs-rest), accuracy and
balanced_accuracy; other metrics get no two-level interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

RESAMPLES = 2000
SEED = 0
RESAMPLED_METRICS = {"auc", "accuracy", "balanced_accuracy"}


@dataclass(frozen=True)
class TwoLevel:
    ci_low: float
    ci_high: float
    p_a_beats_b: float


def two_level_bootstrap(pairs: dict[float, dict[int, pd.DataFrame]], metric: str, sign: float = 1.0,
                        resamples: int = RESAMPLES, seed: int = SEED) -> TwoLevel:
    """pairs: fraction -> seed -> merged predictions (label, predicted_a, predicted_b, prob_<k>_a, prob_<k>_b) of the
    two cells; only seeds present at every fraction count. The 95% percentile interval of the mean advantage
    sign * (a - b) and P(A > B)."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in pairs.values()))) if pairs else []
    if metric not in RESAMPLED_METRICS or len(seeds) < 2:
        return TwoLevel(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    k = len(seeds)
    drawn = rng.integers(0, k, size=(resamples, k))  # replicate r uses seeds[drawn[r, j]] in its slot j
    per_slot = np.zeros((resamples, k))
    for position, chosen in enumerate(seeds):
        advantage = np.mean([sign * _resampled_advantage(by_seed[chosen], metric, resamples * k, rng)
                             for by_seed in pairs.values()], axis=0).reshape(resamples, k)
        per_slot += np.where(drawn == position, advantage, 0.0)
    means = per_slot.mean(axis=1)
    single = per_slot[:, 0][~np.isnan(per_slot[:, 0])]
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return TwoLevel(float(low), float(high), float(np.mean(single > 0) + 0.5 * np.mean(single == 0)))


def _resampled_advantage(merged: pd.DataFrame, metric: str, draws: int, rng: np.random.Generator) -> np.ndarray:
    """metric(a) - metric(b) on `draws` resamples of the merged test images (the same images for both)."""
    index = rng.integers(0, len(merged), size=(draws, len(merged)))
    labels = merged["label"].to_numpy()[index]
    return _metric(merged, "a", metric, index, labels) - _metric(merged, "b", metric, index, labels)


def _metric(merged: pd.DataFrame, side: str, metric: str, index: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if metric == "auc":
        classes = sorted(c for c in merged.columns if c.startswith("prob_") and c.endswith(f"_{side}"))
        scores = [merged[column].to_numpy()[index] for column in classes]
        if len(scores) == 2:
            return _row_auc(labels == 1, scores[1])
        return np.nanmean([_row_auc(labels == c, scores[c]) for c in range(len(scores))], axis=0)
    correct = merged[f"predicted_{side}"].to_numpy()[index] == labels
    if metric == "accuracy":
        return correct.mean(axis=1)
    recalls = []
    for c in np.unique(merged["label"]):
        members = labels == c
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((correct & members).sum(axis=1) / members.sum(axis=1))
    return np.nanmean(recalls, axis=0)


def _row_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The AUC of every row (Mann-Whitney from midranks); NaN for rows holding one class only."""
    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
