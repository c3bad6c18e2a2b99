"""Train/val/test splits and the nested training subsets of a study's fractions.

Both are stratified by label and group-aware: when images carry a group (patient, study), a group never sits on
both sides of a split, and subsets draw whole groups. Both are deterministic for a seed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from study.data.dataset import SPLITS, Dataset
from study.data.source_registry import source_class

log = logging.getLogger(__name__)

_SPLIT_STREAM = 0  # separate random streams, so a split seed and a subset seed of equal value stay unrelated
_SUBSET_STREAM = 1
_RESPLIT_STREAM = 2  # a seed's own split (dataset.resplit), unrelated to the fixed split of the same split_seed


def make_split(
    labels: np.ndarray, groups: np.ndarray | None, seed: int | tuple[int, ...], val_fraction: float,
    test_fraction: float,
) -> np.ndarray:
    """A "train"/"val"/"test" array for the rows, with the given shares of every class in val and test.

    seed is a number or a tuple of numbers (all of them seed the draw).

    Without groups the per-class counts are exact (a class of 3 or more images gets at least one val and one
    test image); with groups whole groups are assigned greedily and the shares are approximate.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val and test fractions must be >= 0 and sum below 1, got {val_fraction}, {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng([*(seed if isinstance(seed, tuple) else (seed,)), _SPLIT_STREAM])
    if groups is None:
        split = _split_rows(labels, rng, val_fraction, test_fraction)
    else:
        split = _split_groups(labels, np.asarray(groups), rng, np.array([1 - val_fraction - test_fraction,
                                                                           val_fraction, test_fraction]))
    for name, fraction in zip(SPLITS, (1, val_fraction, test_fraction)):
        if fraction > 0 and not (split == name).any():
            log.warning("the %s split is empty (%d images, fraction %s)", name, len(labels), fraction)
    return split


def _split_rows(labels: np.ndarray, rng: np.random.Generator, val_fraction: float, test_fraction: float) -> np.ndarray:
    split = np.full(len(labels), "train", dtype="<U5")
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = _quota(test_fraction, len(rows))
        n_val = min(_quota(val_fraction, len(rows)), max(len(rows) - n_test - 1, 0))
        split[rows[:n_test]] = "test"
        split[rows[n_test : n_test + n_val]] = "val"
    return split


def _quota(fraction: float, n: int) -> int:
    if fraction == 0:
        return 0
    count = _round(fraction * n)
    return max(count, 1) if n >= 3 else count


def _split_groups(labels: np.ndarray, groups: np.ndarray, rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """Assign whole groups, largest first (ties in random order), to the split they bring closest to target."""
    counts, row_group = _group_class_counts(labels, groups)
    totals = counts.sum(axis=0)
    target = np.outer(shares, totals)
    weight = 1 / np.maximum(totals, 1)
    current = np.zeros_like(target)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    assigned = np.empty(len(counts), dtype=int)
    for group in order:
        after = current + counts[group]
        cost = (((after - target) ** 2 - (current - target) ** 2) * weight).sum(axis=1)
        assigned[group] = int(np.argmin(cost))
        current[assigned[group]] += counts[group]
    return np.array(SPLITS, dtype="<U5")[assigned[row_group]]


def _group_class_counts(labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images per (group, class) and each row's group index."""
    _, row_group = np.unique(groups, return_inverse=True)
    _, row_class = np.unique(labels, return_inverse=True)
    counts = np.zeros((row_group.max() + 1, row_class.max() + 1))
    np.add.at(counts, (row_group, row_class), 1)
    return counts, row_group


def training_subsets(
    labels: np.ndarray, groups: np.ndarray | None, fractions: list[float], seed: int
) -> dict[float, np.ndarray]:
    """Sorted indices into the training rows for each fraction: nested, stratified, group-aware.

    Every group (each image, without groups) falls in the stratum of its majority class; within a stratum one
    seeded order of its groups is cut at the prefix closest to fraction x the stratum's images (at least one
    group), so for one seed a smaller fraction's subset lies inside every larger one. A class that is no group's
    majority gets the first group holding it added to every subset. Fraction 1.0 returns every row.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no training images to draw subsets from")
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fractions must be in (0, 1], got {fraction}")
    counts, row_group = _group_class_counts(labels, np.arange(len(labels)) if groups is None else np.asarray(groups))
    sizes = counts.sum(axis=1)
    stratum = counts.argmax(axis=1)
    order = np.random.default_rng([seed, _SUBSET_STREAM]).permutation(len(counts))
    strata = [order[stratum[order] == k] for k in range(counts.shape[1])]
    always = [order[counts[order, k] > 0][0] for k in range(counts.shape[1]) if not len(strata[k])]
    subsets = {}
    for fraction in fractions:
        chosen = [np.asarray(always, dtype=int)]
        for members in strata:
            if len(members):
                cumulative = np.cumsum(sizes[members])
                chosen.append(members[: _prefix_length(cumulative, fraction * cumulative[-1])])
        subsets[fraction] = np.flatnonzero(np.isin(row_group, np.concatenate(chosen)))
    return subsets


def fraction_shortfall(training_labels: dict[int | None, np.ndarray], class_names: list[str],
                       fractions: list[float]) -> str | None:
    """Why a fraction cannot draw a stratified subset from every seed's training labels (seed None: the one fixed
    split), or None when every one can.

    A fraction f keeps round(f x n) of a class's n training images; when that is 0 the subset would not be a
    stratified share of the class any more (it would be padded to one image), so the protocol must not ask for it.
    The fraction the message suggests passes this rule for every class of every split at once.
    """
    counts = {seed: np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
              for seed, labels in training_labels.items()}
    for seed, per_class in counts.items():
        for name, count in zip(class_names, per_class):
            if count == 0:
                return (f"{_in_split(seed)}class {name!r} has no training images at all; every fraction needs at "
                        "least one")
    suggested = _smallest_fraction(min(int(per_class.min()) for per_class in counts.values()))
    every = "every class in every seed's split" if len(counts) > 1 else "every class"
    for seed, per_class in counts.items():
        for fraction in sorted(fractions):
            for name, count in zip(class_names, per_class):
                if _round(fraction * count) < 1:
                    return (f"{_in_split(seed)}fraction {fraction:g} leaves class {name!r} with no image: "
                            f"{fraction:g} x its {count} training images rounds to 0; use fractions of at least "
                            f"{suggested:g} (the smallest that leaves {every} an image) or more data")
    return None


def split_shortfall(labels: np.ndarray, class_names: list[str], splits: dict[int | None, np.ndarray],
                    official: bool) -> str | None:
    """Why a class is not measured by every split (seed None: the fixed one; official: the source made it), or None
    when every class of every split has validation and test images."""
    labels = np.asarray(labels, dtype=np.int64)
    for seed, split in splits.items():
        counts = {name: np.bincount(labels[split == name], minlength=len(class_names)) for name in SPLITS}
        for k, class_name in enumerate(class_names):
            if counts["val"][k] and counts["test"][k]:
                continue
            total = sum(int(per_class[k]) for per_class in counts.values())
            which = ("the source's own split" if official else "the fixed split" if seed is None
                     else f"seed {seed}'s split")
            fix = ("give it images in the source's validation and test parts" if official else
                   "add images of it (3 or more, from 3 or more groups where images carry one)")
            return (f"class {class_name!r} has {total} image{'s' if total != 1 else ''}: {counts['train'][k]} in "
                    f"training, {counts['val'][k]} in validation, {counts['test'][k]} in test ({which}); every "
                    f"class needs images in validation and test, or its metrics are not measured: {fix}, or remove "
                    "the class")
    return None


def _smallest_fraction(images: int) -> float:
    """The smallest fraction of three significant digits whose share of `images` rounds to at least one image (and
    so of every larger class)."""
    fraction = float(f"{0.5 / images:.3g}")
    while _round(fraction * images) < 1:  # rounded down: one unit of the third significant digit up
        fraction = float(f"{fraction + 10.0 ** (math.floor(math.log10(fraction)) - 2):.3g}")
    return fraction


def _in_split(seed: int | None) -> str:
    return "" if seed is None else f"in seed {seed}'s split (dataset.resplit), "


def _prefix_length(cumulative: np.ndarray, target: float) -> int:
    """The prefix whose size is closest to target (ties go up), at least 1; monotone in target."""
    above = int(np.searchsorted(cumulative, target))
    if above >= len(cumulative):
        return len(cumulative)
    if above > 0 and target - cumulative[above - 1] < cumulative[above] - target:
        return above
    return above + 1


def ensure_split(dataset: Dataset, spec) -> Dataset:
    """The dataset with split set: the source's own, or one made with spec.split_seed and its fractions.

    A source split without val (or test) has it carved out of its train part with the spec's fraction of it.
    spec.resplit is refused for a source with a split of its own: that split stays fixed.
    """
    if spec.resplit and dataset.split is not None:
        raise ValueError("dataset.resplit is only for a source without a train/val/test split of its own")
    if dataset.split is None:
        split = make_split(dataset.labels, dataset.groups, spec.split_seed, spec.val_fraction, spec.test_fraction)
        return replace(dataset, split=split)
    _warn_shared_groups(dataset)
    missing = [name for name in ("val", "test") if not (dataset.split == name).any()]
    if not missing:
        return dataset
    train = np.flatnonzero(dataset.split == "train")
    carved = make_split(
        dataset.labels[train],
        None if dataset.groups is None else dataset.groups[train],
        spec.split_seed,
        spec.val_fraction if "val" in missing else 0.0,
        spec.test_fraction if "test" in missing else 0.0,
    )
    log.info("source split has no %s; carved from its %d training images", " or ".join(missing), len(train))
    split = dataset.split.astype("<U5")
    split[train] = carved
    return replace(dataset, split=split)


def seed_split(dataset: Dataset, spec, seed: int | None) -> Dataset:
    """The dataset with the split that the cells of seed train on.

    With spec.resplit, a split of its own: make_split with the spec's shares, seeded by split_seed and the seed
    (stratified and group-aware like every split). Otherwise, and for seed None, the dataset as ensure_split made it.
    """
    if not spec.resplit or seed is None:
        return dataset
    split = make_split(dataset.labels, dataset.groups, (spec.split_seed, _RESPLIT_STREAM, seed), spec.val_fraction,
                       spec.test_fraction)
    return replace(dataset, split=split)


def split_description(spec, official: bool | None = None) -> str:
    """The split in words; official: whether the source came with a split (None: as far as the spec tells)."""
    if official is None:
        official = source_has_split(spec)
    seeded = f"seeded (split_seed {spec.split_seed}, val {spec.val_fraction:g}, test {spec.test_fraction:g})"
    if spec.resplit:
        return (f"a new seeded split per seed (resplit: val {spec.val_fraction:g}, test {spec.test_fraction:g}, "
                f"seeded by split_seed {spec.split_seed} and the seed)")
    if official is None:
        return f"official where the folder has train/val/test folders, else {seeded}"
    return "official" if official else seeded


def source_has_split(spec) -> bool | None:
    """Whether the spec's source comes with a train/val/test split; None where only its files tell (a folder)."""
    return source_class(spec.source).has_split(spec)


def _warn_shared_groups(dataset: Dataset) -> None:
    if dataset.groups is None:
        return
    sides = {name: set(dataset.groups[dataset.split == name]) for name in SPLITS}
    shared = (sides["train"] & (sides["val"] | sides["test"])) | (sides["val"] & sides["test"])
    if shared:
        log.warning("the source's own split puts %d groups on more than one side (e.g. %s)", len(shared),
                    sorted(shared)[0])


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))
