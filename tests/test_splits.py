"""Train/val/test splits and nested training subsets: stratified, group-aware, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from study.data.dataset import Dataset, split_indices
from study.data.splits import ensure_split, fraction_shortfall, make_split, training_subsets
from study.protocol.schema import SyntheticSpec

FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]
BUSI_LABELS = np.repeat([0, 1, 2], [437, 210, 133])  # the real BUSI class sizes


def _groups(n: int, seed: int = 0) -> np.ndarray:
    """Patients of 1 to 4 consecutive images, as with several views per patient."""
    sizes = np.random.default_rng(seed).integers(1, 5, n)
    return np.repeat([f"p{i}" for i in range(n)], sizes)[:n]


def _dataset(labels: np.ndarray, groups=None, split=None) -> Dataset:
    n = len(labels)
    return Dataset(images=np.zeros((n, 16, 16, 1), np.uint8), labels=labels.astype(np.int64),
                   class_names=[f"c{i}" for i in range(labels.max() + 1)], ids=np.array([str(i) for i in range(n)]),
                   groups=groups, split=split, fingerprint="test")


# -------------------------------------------------------------------------------------------------- split
def test_split_is_stratified_per_class():
    split = make_split(BUSI_LABELS, None, seed=0, val_fraction=0.15, test_fraction=0.2)
    for label, size in enumerate([437, 210, 133]):
        rows = split[BUSI_LABELS == label]
        assert abs((rows == "test").sum() - 0.2 * size) <= 1
        assert abs((rows == "val").sum() - 0.15 * size) <= 1


def test_split_is_deterministic_per_seed():
    first = make_split(BUSI_LABELS, None, 3, 0.15, 0.2)
    assert (first == make_split(BUSI_LABELS, None, 3, 0.15, 0.2)).all()
    assert (first != make_split(BUSI_LABELS, None, 4, 0.15, 0.2)).any()


def test_small_classes_still_reach_val_and_test():
    labels = np.array([0] * 40 + [1] * 3)
    split = make_split(labels, None, 0, 0.15, 0.2)
    assert sorted(split[labels == 1]) == ["test", "train", "val"]


def test_split_keeps_each_group_on_one_side():
    groups = _groups(len(BUSI_LABELS))
    split = make_split(BUSI_LABELS, groups, 1, 0.15, 0.2)
    for group in np.unique(groups):
        assert len(set(split[groups == group])) == 1
    for label in range(3):
        rows = split[BUSI_LABELS == label]
        assert abs((rows == "test").mean() - 0.2) < 0.04 and abs((rows == "val").mean() - 0.15) < 0.04
    assert (split == make_split(BUSI_LABELS, groups, 1, 0.15, 0.2)).all()


def test_bad_split_fractions_are_refused():
    with pytest.raises(ValueError, match="sum below 1"):
        make_split(BUSI_LABELS, None, 0, 0.6, 0.5)


# --------------------------------------------------------------------------------------------- subsets
def test_subsets_are_nested_stratified_and_complete_at_one():
    subsets = training_subsets(BUSI_LABELS, None, FRACTIONS, seed=0)
    for small, large in zip(FRACTIONS, FRACTIONS[1:]):
        assert set(subsets[small]) <= set(subsets[large])
    np.testing.assert_array_equal(subsets[1.0], np.arange(len(BUSI_LABELS)))
    for fraction in FRACTIONS:
        counts = np.bincount(BUSI_LABELS[subsets[fraction]], minlength=3)
        expected = [max(1, int(np.floor(fraction * size + 0.5))) for size in (437, 210, 133)]
        assert counts.tolist() == expected


def test_subsets_keep_every_class_even_when_tiny():
    labels = np.array([0] * 200 + [1] * 3)
    assert set(labels[training_subsets(labels, None, [0.01], 0)[0.01]]) == {0, 1}


def test_subsets_are_deterministic_per_seed_and_alone_equal_in_a_list():
    first = training_subsets(BUSI_LABELS, None, FRACTIONS, seed=5)
    again = training_subsets(BUSI_LABELS, None, [0.25], seed=5)  # a worker asks for one fraction at a time
    np.testing.assert_array_equal(first[0.25], again[0.25])
    other = training_subsets(BUSI_LABELS, None, [0.25], seed=6)
    assert set(first[0.25]) != set(other[0.25])


def test_group_subsets_draw_whole_groups_nested():
    groups = _groups(len(BUSI_LABELS), seed=2)
    subsets = training_subsets(BUSI_LABELS, groups, FRACTIONS, seed=1)
    for fraction in FRACTIONS:
        chosen = set(groups[subsets[fraction]])
        assert set(np.flatnonzero(np.isin(groups, list(chosen)))) == set(subsets[fraction])
        assert abs(len(subsets[fraction]) / len(BUSI_LABELS) - fraction) < 0.02
        assert set(BUSI_LABELS[subsets[fraction]]) == {0, 1, 2}
    for small, large in zip(FRACTIONS, FRACTIONS[1:]):
        assert set(subsets[small]) <= set(subsets[large])


def test_a_class_only_in_mixed_groups_is_still_drawn():
    labels = np.array([0, 0, 0, 1] * 20 + [0] * 100)
    groups = np.array([f"mixed{i // 4}" for i in range(80)] + [f"solo{i}" for i in range(100)])
    for fraction, subset in training_subsets(labels, groups, [0.01, 0.1, 0.5], seed=0).items():
        assert 1 in labels[subset], fraction


def test_bad_fraction_is_refused():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        training_subsets(BUSI_LABELS, None, [0.0], 0)


# ---------------------------------------------------------------------------------------------- ensure
def test_the_suggested_smallest_fraction_passes_for_every_class_and_seed_at_once():
    # seed 0's class c0 alone suggested 0.5 / 284 printed as 0.00176, which still rounds to 0 of its 284 images
    # (0.49984), and seed 1's class c1 of 270 images needs more: 0.5 / 270 printed as 0.00185 rounds to 0 too
    training = {0: np.repeat([0, 1], [284, 290]), 1: np.repeat([0, 1], [300, 270])}
    problem = fraction_shortfall(training, ["c0", "c1"], [0.001, 1.0])
    assert problem.startswith("in seed 0's split (dataset.resplit), fraction 0.001 leaves class 'c0' with no image")
    suggested = float(problem.split("use fractions of at least ")[1].split()[0])
    assert suggested == 0.00186 and "every class in every seed's split" in problem
    assert fraction_shortfall(training, ["c0", "c1"], [suggested, 1.0]) is None
    smaller = fraction_shortfall(training, ["c0", "c1"], [0.00185, 1.0])  # the suggestion is the smallest
    assert smaller.startswith("in seed 1's split (dataset.resplit), fraction 0.00185 leaves class 'c1'")
    assert "at least 0.00186 " in smaller
    assert "at least 0.5 (the smallest that leaves every class an image)" in fraction_shortfall(
        {None: np.array([0, 1, 1])}, ["c0", "c1"], [0.4])


def test_ensure_split_makes_one_with_the_spec_settings():
    spec = SyntheticSpec(source="synthetic", val_fraction=0.1, test_fraction=0.3, split_seed=7)
    dataset = ensure_split(_dataset(BUSI_LABELS), spec)
    assert (dataset.split == make_split(BUSI_LABELS, None, 7, 0.1, 0.3)).all()


def test_ensure_split_carves_missing_val_from_train_only():
    split = np.where(np.arange(len(BUSI_LABELS)) % 5 == 0, "test", "train")
    groups = _groups(len(BUSI_LABELS))
    dataset = ensure_split(_dataset(BUSI_LABELS, groups, split), SyntheticSpec(source="synthetic"))
    assert (dataset.split[split == "test"] == "test").all()
    train_groups = set(groups[dataset.split == "train"])
    assert not train_groups & set(groups[dataset.split == "val"])
    assert 0.1 < (dataset.split == "val").mean() < 0.16


def test_val_and_test_never_shrink_with_the_fraction():
    dataset = ensure_split(_dataset(BUSI_LABELS, _groups(len(BUSI_LABELS))), SyntheticSpec(source="synthetic"))
    parts = split_indices(dataset)
    train = parts["train"]
    subsets = training_subsets(dataset.labels[train], dataset.groups[train], FRACTIONS, seed=0)
    for subset in subsets.values():
        assert set(train[subset]) <= set(train)
    assert len(parts["val"]) + len(parts["test"]) + len(train) == len(BUSI_LABELS)
    with pytest.raises(ValueError, match="ensure_split"):
        split_indices(_dataset(BUSI_LABELS))
