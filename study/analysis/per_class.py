"""Per-class sensitivity, specificity, PPV and NPV at the operating point each cell chose on its validation split,
recomputed from the stored test probabilities, over the seeds of an arm at one fraction.

Each class is read one-vs-rest: true positives are its images predicted as it, false negatives its images predicted
as another class, false positives other images predicted as it, true negatives the rest. With two classes only class
1 (the positive class) is reported: its sensitivity and specificity are the binary ones.

Per rate: the mean over seeds of each seed's rate, and its 95% interval from a two-level bootstrap that draws the
seeds with replacement and, within each drawn seed, its test images with replacement (both sources of noise; see
study.analysis.resampling); beside them the rate of the counts pooled over seeds with its Wilson interval, which
counts each seed's predictions as images of their own and so covers the test images' noise alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from study.analysis.resampling import Predictions, resampled_sums
from study.analysis.stats import CONFIDENCE
from study.core.operating_point import apply_operating_point
from study.core.vocabulary import MACRO_METRICS
from study.data.splits import training_subsets

COUNTS = ("tp", "fn", "fp", "tn")
RATES = {  # rate -> its numerator and the counts its denominator adds up
    "sensitivity": ("tp", ("tp", "fn")),
    "specificity": ("tn", ("tn", "fp")),
    "ppv": ("tp", ("tp", "fp")),
    "npv": ("tn", ("tn", "fn")),
}
RESAMPLES = 1000  # two-level bootstrap replicates per arm and fraction
SEED = 0
ARGMAX = "argmax"  # the rule of cells stored before the operating point was: the most probable class
TABLE_COLUMNS = ["fraction", "arm", "role", "no_ranking", "collapsed", "class", "seeds", "rule", *COUNTS] + [
    f"{rate}_{part}" for rate in RATES for part in ("mean", "ci_low", "ci_high", "pooled", "wilson_low", "wilson_high")]


def class_counts(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[c] = (tp, fn, fp, tn) of class c against the rest."""
    return indicators(labels, predicted, n_classes).sum(axis=0).reshape(n_classes, len(COUNTS))


def indicators(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Per image, 0/1 columns (tp, fn, fp, tn) of class 0, then of class 1, ...: which count of each class it adds
    to."""
    member = np.asarray(labels)[:, None] == np.arange(n_classes)
    chosen = np.asarray(predicted)[:, None] == np.arange(n_classes)
    parts = [member & chosen, member & ~chosen, ~member & chosen, ~member & ~chosen]
    return np.stack(parts, axis=2).reshape(len(member), n_classes * len(COUNTS)).astype(np.int64)


def rates(counts: np.ndarray) -> np.ndarray:
    """The four rates (RATES order) of counts (..., tp/fn/fp/tn), NaN where a denominator is 0."""
    index = {name: position for position, name in enumerate(COUNTS)}
    columns = []
    for numerator, denominator in RATES.values():
        total = sum(counts[..., index[name]] for name in denominator)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.append(np.where(total > 0, counts[..., index[numerator]] / np.maximum(total, 1), np.nan))
    return np.stack(columns, axis=-1)


def wilson(successes: float, trials: float) -> tuple[float, float]:
    """The 95% Wilson score interval of successes out of trials (statsmodels); NaN for no trials."""
    if trials <= 0:
        return math.nan, math.nan
    low, high = proportion_confint(successes, trials, alpha=1 - CONFIDENCE, method="wilson")
    return float(low), float(high)


def two_level_rates(seeds: list[tuple[np.ndarray, np.ndarray]], n_classes: int, resamples: int = RESAMPLES,
                    seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval (low, high; each classes x rates) of the mean over seeds of each rate, from a
    bootstrap that draws the seeds (their labels and predicted classes) with replacement and each drawn seed's test
    images with replacement."""
    rng = np.random.default_rng(seed)
    k = len(seeds)
    drawn = rng.integers(0, k, size=(resamples, k))  # replicate r uses seeds[drawn[r, j]] in its slot j
    per_slot = np.full((resamples, k, n_classes, len(RATES)), np.nan)
    for position, (labels, predicted) in enumerate(seeds):
        slots = drawn == position  # one fresh test-image draw for every slot that drew this seed
        sums = resampled_sums(indicators(labels, predicted, n_classes), int(slots.sum()), rng)
        per_slot[slots] = rates(sums.reshape(-1, n_classes, len(COUNTS)))
    with warnings.catch_warnings():  # a rate no drawn seed defines stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(per_slot, axis=1)
        low, high = np.nanpercentile(means, [2.5, 97.5], axis=0)
    return low, high


def training_prior(split: pd.DataFrame | None, seed: int, fraction: float, n_classes: int) -> np.ndarray | None:
    """The class shares of a cell's training subset, drawn again from the stored split as the worker drew it (the
    seed's block, else the fixed split); None without a stored split."""
    if split is None:
        return None
    block = seed_block(split, seed)
    train = block[block["split"] == "train"]
    if train.empty:
        return None
    labels = train["label"].to_numpy()
    groups = train["group"].to_numpy(dtype=str) if train["group"].notna().any() else None
    subset = training_subsets(labels, groups, [fraction], int(seed))[fraction]
    return np.bincount(labels[subset], minlength=n_classes) / len(subset)


def seed_block(split: pd.DataFrame, seed) -> pd.DataFrame:
    """The rows of the split a cell of seed trained on: the seed's block, else the fixed split."""
    own = split["seed"].eq(seed).fillna(False)
    return split[own] if own.any() else split[split["seed"].isna()]


def untested_classes(done: pd.DataFrame, split: pd.DataFrame | None, n_classes: int) -> list[list[int]]:
    """Per done cell, the classes its stored test split holds no image of (none known without a stored split)."""
    if split is None or split.empty:
        return [[] for _ in range(len(done))]
    absent = {}
    for seed in done["seed"].unique():
        block = seed_block(split, seed)
        tested = set(block.loc[block["split"] == "test", "label"].astype(int))
        absent[seed] = [k for k in range(n_classes) if k not in tested]
    return [absent[seed] for seed in done["seed"]]


def unmeasured(done: pd.DataFrame, split: pd.DataFrame | None, names: list[str]) -> pd.DataFrame:
    """done with an `untested_classes` column (the names of the classes its test split lacks, ", "-joined) and, for
    those cells, the metrics averaged over classes (MACRO_METRICS) set to NaN: stored values of such cells average
    over the classes present only, so they measure another task."""
    absent = untested_classes(done, split, len(names))
    untested = pd.Series([", ".join(names[k] for k in classes) for classes in absent], index=done.index)
    lacking = untested.ne("")
    return done.assign(untested_classes=untested, **{metric: done[metric].where(~lacking)
                                                     for metric in MACRO_METRICS if metric in done.columns})


def operating_predictions(frame: pd.DataFrame, cell: pd.Series, split: pd.DataFrame | None) -> np.ndarray | None:
    """The cell's predicted classes at its stored operating point (the most probable class where it stored none);
    None when its rule needs the training subset's class shares and no split is stored."""
    probabilities = frame[probability_columns(frame)].to_numpy()
    rule, point = cell.get("operating_rule"), cell.get("operating_point")
    if rule is None or pd.isna(rule):
        return probabilities.argmax(axis=1)
    prior = np.ones(probabilities.shape[1])
    if rule == "prior" and point != 0:
        trained = training_prior(split, cell["seed"], cell["fraction"], probabilities.shape[1])
        if trained is None:
            return None
        prior = trained
    return apply_operating_point(probabilities, rule, point, prior)


def probability_columns(frame: pd.DataFrame) -> list[str]:
    """The prob_<k> columns of stored predictions, in class order."""
    return sorted((c for c in frame.columns if c.startswith("prob_")), key=lambda column: int(column.split("_")[1]))


def reported_classes(n_classes: int) -> list[int]:
    """The classes reported: class 1 alone (the positive class) with two classes, else every class."""
    return [1] if n_classes == 2 else list(range(n_classes))


def arm_rows(cells: pd.DataFrame, predictions: Predictions, split: pd.DataFrame | None) -> list[dict]:
    """One row per reported class over the cells of one arm at one fraction (one per seed): seeds, rules, summed
    counts, and per rate the mean over seeds with its two-level interval, the pooled rate and its Wilson interval.
    Cells without stored predictions, or whose rule cannot be applied again, are left out; none left: no rows."""
    seeds, rules, n_classes = [], set(), 0
    for _, cell in cells.sort_values("seed").iterrows():
        frame = predictions(cell["run_id"])
        predicted = None if frame is None else operating_predictions(frame, cell, split)
        if frame is not None and predicted is not None:
            seeds.append((frame["label"].to_numpy(), predicted))
            rules.add(cell["operating_rule"] if isinstance(cell.get("operating_rule"), str) else ARGMAX)
            n_classes = len(probability_columns(frame))
    if not seeds:
        return []
    per_seed = np.stack([class_counts(labels, predicted, n_classes) for labels, predicted in seeds])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(rates(per_seed), axis=0)
    low, high = two_level_rates(seeds, n_classes)
    pooled = per_seed.sum(axis=0)
    rows = []
    for c in reported_classes(n_classes):
        row: dict[str, Any] = {"class": c, "seeds": len(seeds), "rule": ", ".join(sorted(rules)),
               **dict(zip(COUNTS, (int(v) for v in pooled[c])))}
        for r, (rate, (numerator, denominator)) in enumerate(RATES.items()):
            trials = sum(row[name] for name in denominator)
            row |= {f"{rate}_mean": means[c, r], f"{rate}_ci_low": low[c, r], f"{rate}_ci_high": high[c, r],
                    f"{rate}_pooled": row[numerator] / trials if trials else math.nan}
            row[f"{rate}_wilson_low"], row[f"{rate}_wilson_high"] = wilson(row[numerator], trials)
        rows.append(row)
    return rows


def per_class_table(done: pd.DataFrame, arms: Iterable[tuple[float, str, str]], predictions: Predictions,
                    split: pd.DataFrame | None) -> pd.DataFrame:
    """arm_rows of each (fraction, arm, role) in order, led by fraction, arm and role, with how many of the arm's
    cells there have no ranking and how many collapsed (done: flagged cells, study.analysis.summaries.flagged)."""
    rows = []
    for fraction, arm, role in arms:
        cells = done[(done["fraction"] == fraction) & (done["arm"] == arm)]
        kinds = {kind: int(cells[kind].sum()) for kind in ("no_ranking", "collapsed")}
        rows += [{"fraction": fraction, "arm": arm, "role": role, **kinds, **row}
                 for row in arm_rows(cells, predictions, split)]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
