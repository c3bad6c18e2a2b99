"""ROC curves of an arm's cells at one fraction, from the stored test predictions: one per seed, and one of the seeds'
predictions pooled (every seed's test images together, each image once per seed).

Two classes: the curve of P(class 1) against class 1 (sklearn's roc_curve). Three or more: the macro average of the
one-vs-rest curves of the classes present, their true-positive rates averaged at the union of their false-positive
rates (the area under it is the macro one-vs-rest AUC); such a curve has no thresholds.

A curve keeps, of its points at each level of floor(LEVELS fpr) + floor(LEVELS tpr), the first and the last: the
points of one level lie in one square of side 1 / LEVELS, so a dropped point lies that close to the line drawn, and a
test set of at most LEVELS images of each class keeps every point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from study.analysis.per_class import probability_columns

LEVELS = 250
POOLED = "pooled"
SEED = "seed"
COLUMNS = ["curve", "seed", "fpr", "tpr", "threshold"]


def roc_points(frames: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """seed -> stored predictions: the points of each seed's curve (curve "seed") and of the pooled curve (curve
    "pooled", seed empty). A seed whose test images hold one class only has no curve."""
    parts = [_points(frame, SEED, seed) for seed, frame in sorted(frames.items())]
    if frames:
        parts.append(_points(pd.concat(frames.values(), ignore_index=True), POOLED, None))
    found = [part for part in parts if part is not None]
    if not found:
        return pd.DataFrame(columns=COLUMNS)
    points = pd.concat(found, ignore_index=True)
    return points.assign(seed=points["seed"].astype("Int64"))


def _points(frame: pd.DataFrame, curve: str, seed: int | None) -> pd.DataFrame | None:
    labels = frame["label"].to_numpy()
    columns = probability_columns(frame)
    if len(np.unique(labels)) < 2:
        return None
    if len(columns) == 2:
        fpr, tpr, threshold = roc_curve(labels == 1, frame[columns[1]].to_numpy())
    else:
        fpr, tpr = _macro(labels, frame[columns].to_numpy())
        threshold = np.full(len(fpr), np.nan)
    kept = _kept(fpr, tpr)
    return pd.DataFrame({"curve": curve, "seed": seed, "fpr": fpr[kept], "tpr": tpr[kept],
                         "threshold": threshold[kept]})


def _kept(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Which points of a curve to keep: the first and the last of each level (see the module's docstring)."""
    level = np.floor(LEVELS * fpr) + np.floor(LEVELS * tpr)
    changes = np.diff(level) != 0
    return np.r_[True, changes] | np.r_[changes, True]


def _macro(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The macro-averaged one-vs-rest curve over the classes present in labels: at each false-positive rate of any
    class, the mean of the classes' true-positive rates just before it and just after it (a curve may step up
    there), so that the area under the average is the mean of the classes' AUCs."""
    curves = [roc_curve(labels == c, probabilities[:, c])[:2] for c in np.unique(labels)]
    grid = np.unique(np.concatenate([fpr for fpr, _ in curves]))
    # np.interp takes the last of equal xp: the top of a step; on the reversed curve, the bottom
    before = np.mean([np.interp(-grid, -fpr[::-1], tpr[::-1]) for fpr, tpr in curves], axis=0)
    after = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr in curves], axis=0)
    return np.repeat(grid, 2), np.column_stack([before, after]).ravel()
