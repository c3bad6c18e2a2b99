"""Both sources of noise in one interval: a paired two-level bootstrap over seeds and, within each seed's cells,
over test images, and the probability that a beats b on a new seed and test draw (P(A > B), Bouthillier et al.,
MLSys 2021).

The input is, per fraction and seed, the stored test predictions of a's cell and b's cell, matched by image id. A
replicate draws the seeds with replacement; for each drawn seed and each fraction it draws the test images with
replacement (the same images for a and b, so the pair stays paired) and recomputes both metrics; the replicate's
advantage is the mean over fractions and drawn seeds. P(A > B) is the share of single (seed, test draw) advantages
above zero, ties counted half. Metrics recomputed from predictions: auc (macro one-vs-rest), accuracy and
balanced_accuracy; other metrics get no two-level interval.

A resample of the test images is how often it drew each image; the metrics come from these counts, a block of
resamples at a time: accuracy and balanced accuracy as sums, the AUC from the cumulative counts of the negatives in
score order. The same draws are made as when every resample's images are listed and its metrics computed from them,
so the numbers are those of that direct computation. The recent stretches of the random stream and each cell's
metric on them are remembered: every pair of the pairwise table starts from the same seed, so a cell's metric there
is computed once per fraction and the resamples once for the whole table.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd

RESAMPLES = 2000
SEED = 0
RESAMPLED_METRICS = {"auc", "accuracy", "balanced_accuracy"}
BLOCK_CELLS = 65536  # resamples x test images computed at once
MEMO_SIDES = 512  # recomputed sides remembered (a few MB)
MEMO_BYTES = 2**27  # the most bytes of resample counts remembered
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
    run_ids = _run_ids(cells, fraction)
    by_seed = {}
    for seed in seeds:
        keys = [(arm, int(seed)) for arm in (arm_a, arm_b)]
        frames = [predictions(run_ids[key]) if key in run_ids else None for key in keys]
        if any(frame is None for frame in frames):
            return None
        by_seed[int(seed)] = side_by_side(*frames).rename(columns={"label_a": "label"})
    return by_seed


def _run_ids(cells: pd.DataFrame, fraction: float) -> dict[tuple[str, int], str]:
    """(arm, seed) -> the run id of the first of the cells at one fraction with that arm and seed."""
    at = cells.loc[cells["fraction"] == fraction, ["arm", "seed", "run_id"]]
    found: dict[tuple[str, int], str] = {}
    for arm, seed, run_id in zip(at["arm"], at["seed"], at["run_id"]):
        found.setdefault((arm, int(seed)), run_id)
    return found


def side_by_side(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two cells' predictions matched by image id, columns suffixed _a and _b (the inner merge on image_id); when
    both list the same images in the same order, the same frame without the cost of a merge."""
    if not a["image_id"].equals(b["image_id"]) or a["image_id"].duplicated().any():
        return a.merge(b, on="image_id", suffixes=("_a", "_b"))
    columns = {column if column == "image_id" else f"{column}_a": a[column].array for column in a.columns}
    return pd.DataFrame(columns | {f"{column}_b": b[column].array for column in b.columns if column != "image_id"})


def _resampled_advantage(merged: pd.DataFrame, metric: str, draws: int, rng: np.random.Generator) -> np.ndarray:
    """metric(a) - metric(b) on the next `draws` resamples of the merged test images that rng gives (the same images
    for both). A side already recomputed on the same stretch of rng's stream is remembered and, when both are, rng
    skips the stretch without drawing it."""
    start = repr(rng.bit_generator.state)
    keys = {side: (start, draws, metric, _digest(merged, side, metric)) for side in "ab"}
    found = {side: known for side, key in keys.items() if (known := _SIDES.get(key)) is not None}
    missing = [side for side in keys if side not in found]
    if missing:
        values = _recomputed(merged, [_Recomputed.of(merged, side, metric) for side in missing], draws, rng)
        for side, side_values in zip(missing, values):
            side_values.flags.writeable = False
            found[side] = _SIDES.put(keys[side], _Remembered(side_values, rng.bit_generator.state))
    else:
        rng.bit_generator.state = found["a"].end
    return found["a"].values - found["b"].values


def _recomputed(merged: pd.DataFrame, sides: list[_Recomputed], draws: int, rng: np.random.Generator
                ) -> list[np.ndarray]:
    """Each side's metric on the next `draws` resamples of the test images that rng gives."""
    parts = [np.empty((len(side.parts), draws)) for side in sides]
    for rows, counts in _resamples(len(merged), draws, rng):
        for side, side_parts in zip(sides, parts):
            for index, part in enumerate(side.parts):
                side_parts[index, rows] = part(counts)
    return [side.combine(side_parts) for side, side_parts in zip(sides, parts)]


def _resamples(n: int, draws: int, rng: np.random.Generator) -> Iterator[tuple[slice, np.ndarray]]:
    """The next `draws` resamples of n test images that rng gives, a block of rows at a time (so that a block's
    arrays stay in the processor's cache): (the rows, counts[r, i] of those rows). A stretch of the stream drawn
    before is remembered (the pairwise table draws the same stretches at every fraction)."""
    key = (repr(rng.bit_generator.state), n, draws)
    known = _STRETCHES.get(key)
    if known is not None:
        rng.bit_generator.state = known.end
        yield from ((rows, compact.astype(np.int64)) for rows, compact in zip(_row_blocks(draws, n), known.blocks))
        return
    blocks: list[np.ndarray | None] = []
    for rows in _row_blocks(draws, n):
        # the same numbers as one draw of (draws, n); int32 holds the same numbers as the default int64 (both take
        # 32-bit draws below 2**32)
        counts = _multiplicities(rng.integers(0, n, size=(rows.stop - rows.start, n), dtype=np.int32), n)
        blocks.append(counts.astype(np.uint8) if counts.max(initial=0) <= np.iinfo(np.uint8).max else None)
        yield rows, counts
    compact = [block for block in blocks if block is not None]
    if len(compact) == len(blocks):
        _STRETCHES.put(key, _Stretch(compact, rng.bit_generator.state))


def resampled_sums(weights: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Per resample of the n test images (the next `draws` that rng gives), the column sums of weights (n x m) over
    the images drawn, each as often as drawn."""
    sums = np.empty((draws, weights.shape[1]), dtype=weights.dtype)
    for rows, counts in _resamples(len(weights), draws, rng):
        sums[rows] = counts @ weights
    return sums


def _row_blocks(rows: int, columns: int) -> list[slice]:
    """Consecutive slices of range(rows) of about BLOCK_CELLS cells each (at least one row)."""
    step = max(1, BLOCK_CELLS // columns)
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def _multiplicities(drawn: np.ndarray, n: int) -> np.ndarray:
    """counts[r, i]: how often row r of drawn holds image i (0 <= i < n)."""
    keys = drawn + np.arange(0, len(drawn) * n, n)[:, None]
    return np.bincount(keys.ravel(), minlength=len(drawn) * n).reshape(len(drawn), n)


@dataclass(frozen=True)
class _Recomputed:
    """One side's metric on resamples: its parts (per class, or one for the whole), each a function of counts[r, i]
    (how often resample r drew test image i) giving one value per resample, and how the parts combine into the
    metric."""

    parts: list[Callable[[np.ndarray], np.ndarray]]
    combine: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def of(cls, merged: pd.DataFrame, side: str, metric: str) -> _Recomputed:
        """Side a's or b's metric (auc, accuracy or balanced_accuracy) in the merged predictions."""
        labels = merged["label"].to_numpy()
        columns = _metric_columns(merged, side, metric)
        if metric == "auc" and len(columns) == 2:
            return cls([_RankedScores.of(labels == 1, merged[columns[1]].to_numpy()).auc], _only)
        if metric == "auc":
            return cls([_RankedScores.of(labels == c, merged[column].to_numpy()).auc
                        for c, column in enumerate(columns)], _class_mean)
        correct = merged[columns[0]].to_numpy() == labels
        if metric == "accuracy":
            return cls([lambda counts: counts @ correct / len(labels)], _only)
        return cls([partial(_recall, correct & (labels == c), labels == c) for c in np.unique(labels)], _class_mean)


def _metric_columns(merged: pd.DataFrame, side: str, metric: str) -> list[str]:
    """The columns a side's metric reads besides label: prob_<k> by class for auc, else the predicted class."""
    if metric != "auc":
        return [f"predicted_{side}"]
    return sorted((c for c in merged.columns if c.startswith("prob_") and c.endswith(f"_{side}")),
                  key=lambda column: int(column.split("_")[1]))  # prob_10 after prob_9


def _recall(hits: np.ndarray, members: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per resample, the share of a class's drawn images classified right (hits: those of its images)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts @ hits / (counts @ members)


def _only(parts: np.ndarray) -> np.ndarray:
    """The metric of a single part."""
    return parts[0]


def _class_mean(parts: np.ndarray) -> np.ndarray:
    """The mean over classes of the parts, leaving out classes a resample lacks."""
    return np.nanmean(parts, axis=0)


@dataclass(frozen=True)
class _RankedScores:
    """One class's scores ranked once (positives: the images of the class), so that the AUC of any resample of the
    test images takes a cumulative sum over the negatives and a few gathers."""

    negatives: np.ndarray  # the negative images, by ascending score
    positives: np.ndarray  # the positive images
    below: np.ndarray  # per positive: how many negatives score lower
    through: np.ndarray  # per positive: how many negatives score lower or the same
    tied: bool  # some positive ties some negative

    @classmethod
    def of(cls, positive: np.ndarray, scores: np.ndarray) -> _RankedScores:
        """The ranking of `scores` with `positive` marking the class's images."""
        negatives = np.flatnonzero(~positive)
        negatives = negatives[np.argsort(scores[negatives], kind="stable")]
        positives = np.flatnonzero(positive)
        ordered = scores[negatives]
        below = np.searchsorted(ordered, scores[positives], side="left")
        through = np.searchsorted(ordered, scores[positives], side="right")
        return cls(negatives, positives, below, through, not np.array_equal(below, through))

    def auc(self, counts: np.ndarray) -> np.ndarray:
        """The AUC per row of counts (counts[r, i]: how often resample r drew image i; ties count half), in integers
        from the cumulative counts of the negatives in score order; NaN for rows that hold one class only."""
        cumulative = np.zeros((len(counts), len(self.negatives) + 1), dtype=counts.dtype)  # column j: j lowest
        np.cumsum(counts.take(self.negatives, axis=1), axis=1, out=cumulative[:, 1:])
        drawn_positives = counts.take(self.positives, axis=1)
        below = cumulative.take(self.below, axis=1)  # per drawn positive: the drawn negatives below it
        through = cumulative.take(self.through, axis=1) if self.tied else below  # ... or tied with it
        twice_wins = np.einsum("ij,ij->i", drawn_positives, below + through)  # a tie wins half
        with np.errstate(invalid="ignore", divide="ignore"):
            return twice_wins / (2 * drawn_positives.sum(axis=1) * cumulative[:, -1])


def weighted_auc(positive: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The AUC of every row of counts (image i counted counts[r, i] times by row r; ties count half); NaN for rows
    that hold one class only."""
    return _RankedScores.of(positive, scores).auc(counts)


@dataclass(frozen=True)
class _Remembered:
    """A side's recomputed metric on a stretch of the random stream, and the generator's state after the stretch."""

    values: np.ndarray
    end: Mapping[str, Any]


@dataclass(frozen=True)
class _Stretch:
    """The resamples a stretch of the random stream gave, as compact counts per block of rows, and the generator's
    state after the stretch."""

    blocks: list[np.ndarray]
    end: Mapping[str, Any]


_Value = TypeVar("_Value")


class _Recent(Generic[_Value]):
    """A memo of the most recently used entries: beyond `capacity` (counted by `weight`), it forgets the least
    recently used."""

    def __init__(self, capacity: int, weight: Callable[[_Value], int] = lambda value: 1) -> None:
        self.capacity = capacity
        self.weight = weight
        self._entries: OrderedDict[tuple, _Value] = OrderedDict()
        self._total = 0

    def get(self, key: tuple) -> _Value | None:
        """The remembered value, or None."""
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple, value: _Value) -> _Value:
        """Remembers a value and returns it."""
        if key in self._entries:
            self._total -= self.weight(self._entries.pop(key))
        self._entries[key] = value
        self._total += self.weight(value)
        while self._total > self.capacity and len(self._entries) > 1:
            self._total -= self.weight(self._entries.popitem(last=False)[1])
        return value


def _digest(merged: pd.DataFrame, side: str, metric: str) -> bytes:
    """A fingerprint of what a side's recomputed metric reads: the labels and its metric's columns."""
    digest = hashlib.blake2b(metric.encode(), digest_size=16)
    for column in ["label", *_metric_columns(merged, side, metric)]:
        digest.update(np.ascontiguousarray(merged[column].to_numpy(dtype=float)).tobytes())
    return digest.digest()


_SIDES: _Recent[_Remembered] = _Recent(MEMO_SIDES)  # (stream state, draws, metric, side digest) -> _Remembered
_STRETCHES: _Recent[_Stretch] = _Recent(MEMO_BYTES, lambda stretch: sum(block.nbytes for block in stretch.blocks))
