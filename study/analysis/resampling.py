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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

RESAMPLES = 2000
SEED = 0
RESAMPLED_METRICS = {"auc", "accuracy", "balanced_accuracy"}
Predictions = Callable[[str], "pd.DataFrame | None"]  # run id -> the cell's stored test predictions


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
        slots = drawn == position  # one fresh test-image draw for every slot that drew this seed
        per_slot[slots] = np.mean([sign * _resampled_advantage(by_seed[chosen], metric, int(slots.sum()), rng)
                                   for by_seed in pairs.values()], axis=0)
    means = per_slot.mean(axis=1)
    single = per_slot[:, 0][~np.isnan(per_slot[:, 0])]
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return TwoLevel(float(low), float(high), float(np.mean(single > 0) + 0.5 * np.mean(single == 0)))


def matched_predictions(cells: pd.DataFrame, fraction: float, arm_a: str, arm_b: str, seeds, predictions: Predictions
                        ) -> dict[int, pd.DataFrame] | None:
    """seed -> the test predictions of arm a's and arm b's cells at one fraction, matched by image id, as
    two_level_bootstrap reads them; None when a cell or its stored predictions are missing."""
    at = cells[cells["fraction"] == fraction]
    by_seed = {}
    for seed in seeds:
        run_ids = [at.loc[(at["arm"] == arm) & (at["seed"] == seed), "run_id"] for arm in (arm_a, arm_b)]
        frames = [predictions(ids.iloc[0]) if len(ids) else None for ids in run_ids]
        if any(frame is None for frame in frames):
            return None
        by_seed[int(seed)] = side_by_side(*frames).rename(columns={"label_a": "label"})
    return by_seed


def side_by_side(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two cells' predictions matched by image id, columns suffixed _a and _b (the inner merge on image_id); when
    both list the same images in the same order, the same frame without the cost of a merge."""
    if not a["image_id"].equals(b["image_id"]) or a["image_id"].duplicated().any():
        return a.merge(b, on="image_id", suffixes=("_a", "_b"))
    left = a.rename(columns={column: f"{column}_a" for column in a.columns if column != "image_id"})
    right = b.drop(columns="image_id").add_suffix("_b")
    return pd.concat([left.reset_index(drop=True), right.reset_index(drop=True)], axis=1)


def _resampled_advantage(merged: pd.DataFrame, metric: str, draws: int, rng: np.random.Generator) -> np.ndarray:
    """metric(a) - metric(b) on `draws` resamples of the merged test images (the same images for both)."""
    n = len(merged)
    flat = rng.integers(0, n, size=(draws, n))
    flat *= draws
    flat += np.arange(draws)[:, None]  # image i drawn by resample r counts at i * draws + r
    counts = np.bincount(flat.ravel(), minlength=n * draws).reshape(n, draws)
    return _metric(merged, "a", metric, counts) - _metric(merged, "b", metric, counts)


def _metric(merged: pd.DataFrame, side: str, metric: str, counts: np.ndarray) -> np.ndarray:
    """One side's metric on every resample; counts[i, r]: how often resample r drew test image i."""
    labels = merged["label"].to_numpy()
    if metric == "auc":
        classes = sorted((c for c in merged.columns if c.startswith("prob_") and c.endswith(f"_{side}")),
                         key=lambda column: int(column.split("_")[1]))  # prob_10 after prob_9
        scores = [merged[column].to_numpy() for column in classes]
        if len(scores) == 2:
            return weighted_auc(labels == 1, scores[1], counts)
        return np.nanmean([weighted_auc(labels == c, scores[c], counts) for c in range(len(scores))], axis=0)
    correct = merged[f"predicted_{side}"].to_numpy() == labels
    if metric == "accuracy":
        return correct @ counts / len(labels)
    recalls = []
    for c in np.unique(labels):
        members = labels == c
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((correct & members) @ counts / (members @ counts))
    return np.nanmean(recalls, axis=0)


def weighted_auc(positive: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The AUC of every column of counts (image i counted counts[i, r] times; ties count half), in integers from the
    cumulative counts of the negatives in score order; NaN for columns that hold one class only."""
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(scores[negatives], kind="stable")]
    cumulative = np.zeros((len(negatives) + 1, counts.shape[1]), dtype=counts.dtype)  # row j: the j lowest negatives
    np.cumsum(counts[negatives], axis=0, out=cumulative[1:])
    ordered = scores[negatives]
    below = np.searchsorted(ordered, scores[positive], side="left")
    through = np.searchsorted(ordered, scores[positive], side="right")
    pos = counts[positive]
    twice_wins = (pos * (cumulative[below] + cumulative[through])).sum(axis=0)  # a tie wins half
    with np.errstate(invalid="ignore", divide="ignore"):
        return twice_wins / (2 * pos.sum(axis=0) * cumulative[-1])
