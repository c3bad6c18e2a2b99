"""The two-level bootstrap counts the test images' noise that the seeds cannot see, and P(A > B) reads right, in the
claims and in the pairwise table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from helpers.synthetic import grid_rows, write_store
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from study.analysis.claims import evaluate_claim
from study.analysis.resampling import two_level_bootstrap, weighted_auc
from study.analysis.significance import pairwise_table
from study.analysis.summaries import flagged
from study.protocol.schema import ClaimSpec, ReportSpec


def merged(labels, prob_a, prob_b) -> pd.DataFrame:
    prob_a, prob_b = np.asarray(prob_a, float), np.asarray(prob_b, float)
    return pd.DataFrame({"image_id": range(len(labels)), "label": labels,
                         "predicted_a": (prob_a >= 0.5).astype(int), "predicted_b": (prob_b >= 0.5).astype(int),
                         "prob_0_a": 1 - prob_a, "prob_1_a": prob_a, "prob_0_b": 1 - prob_b, "prob_1_b": prob_b})


def test_weighted_auc_equals_sklearn_on_the_drawn_images():
    rng = np.random.default_rng(0)
    positive = rng.random(40) < 0.4
    scores = np.round(rng.random(40), 1)  # ties
    counts = rng.integers(0, 3, size=(40, 5))  # image i drawn counts[i, r] times by resample r
    expected = [roc_auc_score(np.repeat(positive, c), np.repeat(scores, c)) for c in counts.T]
    np.testing.assert_allclose(weighted_auc(positive, scores, counts), expected, rtol=1e-12)


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
    from study.analysis.resampling import side_by_side

    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(30)]
    a = pd.DataFrame({"run_id": "a", "image_id": ids, "label": rng.integers(0, 2, 30), "prob_1": rng.uniform(size=30)})
    b = a.assign(run_id="b", prob_1=rng.uniform(size=30))
    merged = a.merge(b, on="image_id", suffixes=("_a", "_b"))
    pd.testing.assert_frame_equal(side_by_side(a, b), merged)
    shuffled = b.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(side_by_side(a, shuffled), a.merge(shuffled, on="image_id", suffixes=("_a", "_b")))
