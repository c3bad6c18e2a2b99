"""The two-level bootstrap counts the test images' noise that the seeds cannot see, and P(A > B) reads right, in the
claims and in the pairwise table."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import grid_rows, write_store
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from study.analysis import resampling
from study.analysis.claims import evaluate_claim
from study.analysis.resampling import side_by_side, two_level_bootstrap, weighted_auc
from study.analysis.significance import pairwise_table
from study.analysis.summaries import flagged
from study.protocol.schema import ClaimSpec, ReportSpec


def merged(labels, prob_a, prob_b) -> pd.DataFrame:
    prob_a, prob_b = np.asarray(prob_a, float), np.asarray(prob_b, float)
    return pd.DataFrame({"image_id": range(len(labels)), "label": labels,
                         "predicted_a": (prob_a >= 0.5).astype(int), "predicted_b": (prob_b >= 0.5).astype(int),
                         "prob_0_a": 1 - prob_a, "prob_1_a": prob_a, "prob_0_b": 1 - prob_b, "prob_1_b": prob_b})


def pairwise_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """The weighted AUC by its definition: over every positive-negative pair, w_i w_j (1 when the positive scores
    higher, 1/2 when tied), over W_positive W_negative; NaN without both classes."""
    higher = scores[positive][:, None] > scores[~positive][None, :]
    tied = scores[positive][:, None] == scores[~positive][None, :]
    total = weights[positive].sum() * weights[~positive].sum()
    return weights[positive] @ (higher + 0.5 * tied) @ weights[~positive] / total if total else math.nan


def test_weighted_auc_equals_its_pairwise_definition_and_sklearn():
    rng = np.random.default_rng(0)
    positive = rng.random(40) < 0.4
    scores = np.round(rng.random(40), 1)  # ties, within and across the classes
    counts = rng.integers(0, 3, size=(6, 40))  # resample r draws image i counts[r, i] times
    counts[5, positive] = 0  # a resample without positives
    result = weighted_auc(positive, scores, counts)
    np.testing.assert_allclose(result, [pairwise_auc(positive, scores, row) for row in counts], rtol=1e-12)
    np.testing.assert_allclose(result[:5], [roc_auc_score(positive, scores, sample_weight=row) for row in counts[:5]],
                               rtol=1e-12)
    assert math.isnan(result[5])


def metric_of(merged: pd.DataFrame, rows: np.ndarray, side: str, metric: str) -> float:
    """One side's metric on the drawn rows, computed directly: AUC (class 1, or the mean one-vs-rest AUC over the
    classes the rows hold), accuracy or balanced accuracy."""
    labels, predicted = merged["label"].to_numpy()[rows], merged[f"predicted_{side}"].to_numpy()[rows]
    if metric == "accuracy":
        return float(np.mean(predicted == labels))
    if metric == "balanced_accuracy":
        return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))
    classes = sum(column.startswith("prob_") and column.endswith(f"_{side}") for column in merged.columns)
    ones = np.ones(len(rows))
    aucs = [pairwise_auc(labels == c, merged[f"prob_{c}_{side}"].to_numpy()[rows], ones) for c in range(classes)]
    return aucs[1] if classes == 2 else float(np.nanmean(aucs))


def straightforward_two_level(pairs: dict, metric: str, resamples: int) -> tuple[float, float, float]:
    """The two-level bootstrap written out with the same draws (seed 0): each resample's rows drawn by index and
    both metrics computed on them directly."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in pairs.values())))
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    per_slot = np.zeros((resamples, len(seeds)))
    for position, chosen in enumerate(seeds):
        slots = drawn == position
        advantages = []
        for by_seed in pairs.values():
            merged = by_seed[chosen]
            images = rng.integers(0, len(merged), size=(int(slots.sum()), len(merged)))
            advantages.append([metric_of(merged, rows, "a", metric) - metric_of(merged, rows, "b", metric)
                               for rows in images])
        per_slot[slots] = np.mean(advantages, axis=0)
    low, high = np.nanpercentile(per_slot.mean(axis=1), [2.5, 97.5])
    single = per_slot[:, 0][~np.isnan(per_slot[:, 0])]
    return low, high, np.mean(single > 0) + 0.5 * np.mean(single == 0)


def cell_frames(arms: str, classes: int, images: int = 14, seeds: int = 3) -> dict[tuple[str, int], pd.DataFrame]:
    """(arm, seed) -> stored-like predictions of the same images, scores rounded so that some tie."""
    rng = np.random.default_rng(classes)
    labels = np.arange(images) % classes
    frames = {}
    for arm in arms:
        for seed in range(seeds):
            probs = np.round(rng.dirichlet(np.ones(classes), images), 1)
            frames[arm, seed] = pd.DataFrame({"image_id": [f"img{i}" for i in range(images)], "label": labels,
                                              "predicted": probs.argmax(axis=1)}
                                             | {f"prob_{c}": probs[:, c] for c in range(classes)})
    return frames


def paired(frames: dict, arm_a: str, arm_b: str, fractions=(1.0,)) -> dict[float, dict[int, pd.DataFrame]]:
    """Arm a's and arm b's cells side by side, per seed, at each fraction, as two_level_bootstrap reads them."""
    seeds = {seed for _, seed in frames}
    return {fraction: {seed: side_by_side(frames[arm_a, seed], frames[arm_b, seed]).rename(columns={"label_a": "label"})
                       for seed in seeds} for fraction in fractions}


@pytest.fixture(params=["roomy", "cramped"])
def fresh_memo(monkeypatch, request):
    """Nothing remembered from other tests, room for everything or for the latest entry only, and blocks of a few
    resamples (several blocks per draw)."""
    roomy = request.param == "roomy"
    monkeypatch.setattr(resampling, "_SIDES", resampling._Recent(resampling.MEMO_SIDES if roomy else 1))
    monkeypatch.setattr(resampling, "_STRETCHES", resampling._Recent(
        resampling.MEMO_BYTES if roomy else 1, lambda stretch: sum(block.nbytes for block in stretch.blocks)))
    monkeypatch.setattr(resampling, "BLOCK_CELLS", 40)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metric", ["auc", "accuracy", "balanced_accuracy"])
def test_two_level_bootstrap_equals_the_straightforward_computation(fresh_memo, classes, metric):
    frames = cell_frames("AB", classes)
    pairs = {0.5: paired(frames, "A", "B")[1.0], 1.0: paired(frames, "B", "A")[1.0]}
    result = two_level_bootstrap(pairs, metric, resamples=30)
    np.testing.assert_allclose(astuple(result), straightforward_two_level(pairs, metric, 30), rtol=0, atol=1e-12)


def test_pairs_sharing_cells_and_draws_get_the_straightforward_numbers_in_any_order(fresh_memo):
    frames = cell_frames("ABC", 2)
    for pairs in (paired(frames, "A", "B"), paired(frames, "A", "C"), paired(frames, "C", "B"),
                  paired(frames, "A", "B"), paired(frames, "A", "B", fractions=(0.5, 1.0)),
                  {0.5: paired(frames, "A", "B")[1.0], 1.0: paired(frames, "A", "C")[1.0]}):
        np.testing.assert_allclose(astuple(two_level_bootstrap(pairs, "auc", resamples=25)),
                                   straightforward_two_level(pairs, "auc", 25), rtol=0, atol=1e-12)


def test_test_image_noise_widens_what_identical_seeds_cannot_show():
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 2
    prob_b = np.clip(0.5 + 0.25 * (2 * labels - 1) + rng.normal(0, 0.3, 60), 0, 1)
    prob_a = np.where(np.arange(60) < 6, np.clip(prob_b + 0.3 * (2 * labels - 1), 0, 1), prob_b)  # 6 images better
    same_every_seed = {1.0: {seed: merged(labels, prob_a, prob_b) for seed in range(3)}}
    result = two_level_bootstrap(same_every_seed, "auc")
    assert result.ci_low < result.ci_high  # the seeds alone would give a zero-width interval here
    assert 0.5 < result.p_a_beats_b <= 1.0
    tie = two_level_bootstrap({1.0: {seed: merged(labels, prob_b, prob_b) for seed in range(3)}}, "auc")
    assert (tie.ci_low, tie.ci_high, tie.p_a_beats_b) == (0.0, 0.0, 0.5)


def test_a_clearly_better_model_beats_b_on_almost_every_draw():
    rng = np.random.default_rng(2)
    labels = np.arange(400) % 2
    pairs = {}
    for fraction in (0.5, 1.0):
        pairs[fraction] = {seed: merged(labels, np.clip(0.5 + 0.4 * (2 * labels - 1) + rng.normal(0, 0.2, 400), 0, 1),
                                        np.clip(0.5 + 0.1 * (2 * labels - 1) + rng.normal(0, 0.3, 400), 0, 1))
                           for seed in range(4)}
    result = two_level_bootstrap(pairs, "accuracy")
    assert result.ci_low > 0.2 and result.p_a_beats_b > 0.99
    assert math.isnan(two_level_bootstrap(pairs, "log_loss").ci_low)  # not recomputed from predictions


def test_claims_carry_the_two_level_interval_and_p_a_beats_b(tmp_path):
    store = write_store(tmp_path, grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    spec = ClaimSpec(id="c", a="frozen", b="scratch", metric="accuracy")
    summary, _ = evaluate_claim(flagged(store.cells()), spec, ReportSpec(), [0.1, 0.25, 0.5, 1.0], resamples=999,
                                predictions=store.predictions)
    assert summary["ci2_low"] < summary["effect"] < summary["ci2_high"]
    assert summary["ci2_high"] - summary["ci2_low"] > summary["ci_high"] - summary["ci_low"]
    assert 0.5 < summary["p_a_beats_b"] <= 1


LABELS = np.arange(60) % 2


def stored(probs: dict[tuple[str, int], np.ndarray]):
    """Cells of each (arm, seed) at fraction 0.5, and a lookup of their stored predictions (P(class 1) per test
    image, the same images for every cell)."""
    cells, frames = [], {}
    for (arm, seed), prob in probs.items():
        run_id = f"{arm}-{seed}"
        cells.append({"run_id": run_id, "arm": arm, "strategy": arm, "depth": "all" if arm == "scratch" else "0",
                      "truncate_at": None, "fraction": 0.5, "seed": seed, "degenerate": False,
                      "auc": roc_auc_score(LABELS, prob), "accuracy": np.mean((prob >= 0.5) == LABELS),
                      "balanced_accuracy": balanced_accuracy_score(LABELS, prob >= 0.5),
                      "log_loss": float(np.mean(-np.log(np.where(LABELS == 1, prob, 1 - prob))))})
        frames[run_id] = pd.DataFrame({"run_id": run_id, "image_id": [f"img{i}" for i in range(len(LABELS))],
                                       "label": LABELS, "predicted": (prob >= 0.5).astype(int), "prob_0": 1 - prob,
                                       "prob_1": prob})
    return pd.DataFrame(cells), frames.get


def noisy(seed: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + 0.2 * (2 * LABELS - 1) + rng.normal(0, spread, len(LABELS)), 0.01, 0.99)


def scratch_right_everywhere():
    """Stored cells where scratch ranks and classifies every test image right at every seed and frozen does not."""
    perfect = np.where(LABELS == 1, 0.9, 0.1)
    return stored({("scratch", s): perfect for s in range(3)} | {("frozen", s): noisy(s, 0.4) for s in range(3)})


def test_pairwise_twins_get_a_zero_interval_and_even_odds():
    cells, predictions = stored({(arm, seed): noisy(seed, 0.3) for arm in ("scratch", "frozen") for seed in range(3)})
    for metric in ("auc", "accuracy", "balanced_accuracy"):
        row = pairwise_table(cells, metric, resamples=199, predictions=predictions).iloc[0]
        assert (row["ci2_low"], row["ci2_high"], row["p_a_beats_b"]) == (0.0, 0.0, 0.5), metric
    without = pairwise_table(cells, "auc", resamples=199)
    assert without[["ci2_low", "ci2_high", "p_a_beats_b"]].isna().all().all()


def test_pairwise_a_better_on_every_image_and_seed_beats_b_almost_surely():
    cells, predictions = scratch_right_everywhere()
    for metric in ("auc", "accuracy"):
        row = pairwise_table(cells, metric, resamples=199, predictions=predictions).iloc[0]
        assert (row["arm_a"], row["arm_b"]) == ("scratch", "frozen")
        assert 0 < row["ci2_low"] < row["mean_diff"] < row["ci2_high"], metric
        assert row["p_a_beats_b"] > 0.99, metric


def test_pairwise_on_a_lower_is_better_metric_has_no_two_level_columns():
    cells, predictions = scratch_right_everywhere()
    row = pairwise_table(cells, "log_loss", resamples=199, predictions=predictions).iloc[0]
    assert row["mean_diff"] < 0  # scratch's log loss is the lower: a - b, as in the seed columns
    assert math.isnan(row["ci2_low"]) and math.isnan(row["ci2_high"]) and math.isnan(row["p_a_beats_b"])


def test_many_classes_pair_each_probability_column_with_its_class():
    rng = np.random.default_rng(3)
    labels = np.arange(220) % 11  # prob_10 must follow prob_9, not prob_1
    noisy = rng.dirichlet(np.ones(11), 220)
    columns = {"image_id": range(220), "label": labels, "predicted_a": labels, "predicted_b": noisy.argmax(1)}
    for c in range(11):
        columns[f"prob_{c}_a"] = (labels == c).astype(float)  # a ranks every class perfectly
        columns[f"prob_{c}_b"] = noisy[:, c]
    frame = pd.DataFrame(columns)
    expected = 1.0 - roc_auc_score(labels, noisy, multi_class="ovr", average="macro")
    result = two_level_bootstrap({1.0: {seed: frame for seed in range(3)}}, "auc")
    assert result.ci_low < expected < result.ci_high and result.ci_low > expected - 0.1


def test_side_by_side_equals_the_merge_on_image_id():
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(30)]
    a = pd.DataFrame({"run_id": "a", "image_id": ids, "label": rng.integers(0, 2, 30), "prob_1": rng.uniform(size=30)})
    b = a.assign(run_id="b", prob_1=rng.uniform(size=30))
    merged = a.merge(b, on="image_id", suffixes=("_a", "_b"))
    pd.testing.assert_frame_equal(side_by_side(a, b), merged)
    shuffled = b.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(side_by_side(a, shuffled), a.merge(shuffled, on="image_id", suffixes=("_a", "_b")))
