"""The two-level bootstrap counts the test images' noise that the seeds cannot see, and P(A > B) reads right."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from study.analysis import flagged
from study.claims import evaluate_claim
from study.protocol import ClaimSpec, ReportSpec
from study.resampling import _row_auc, two_level_bootstrap
from test_report_synthetic import grid_rows, write_store


def merged(labels, prob_a, prob_b) -> pd.DataFrame:
    prob_a, prob_b = np.asarray(prob_a, float), np.asarray(prob_b, float)
    return pd.DataFrame({"image_id": range(len(labels)), "label": labels,
                         "predicted_a": (prob_a >= 0.5).astype(int), "predicted_b": (prob_b >= 0.5).astype(int),
                         "prob_0_a": 1 - prob_a, "prob_1_a": prob_a, "prob_0_b": 1 - prob_b, "prob_1_b": prob_b})


def test_row_auc_equals_sklearn():
    rng = np.random.default_rng(0)
    positive = rng.random((5, 40)) < 0.4
    scores = np.round(rng.random((5, 40)), 1)  # ties
    expected = [roc_auc_score(p, s) for p, s in zip(positive, scores)]
    np.testing.assert_allclose(_row_auc(positive, scores), expected, rtol=1e-12)


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
