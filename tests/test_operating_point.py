"""The operating point is chosen on validation only and applied to test: Youden's J for two classes, a class-prior
correction for more; and the two kinds of degenerate cells are told apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.summaries import excluded_for, flagged
from study.training.metrics import (
    apply_operating_point,
    choose_operating_point,
    operating_metrics,
)


def youden(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    predicted = scores >= threshold
    sensitivity = predicted[labels == 1].mean()
    specificity = (~predicted[labels == 0]).mean()
    return sensitivity + specificity - 1


def test_binary_threshold_maximises_youden_j_on_validation():
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(60, int), np.ones(25, int)]
    scores = np.clip(rng.normal(0.55 + 0.2 * labels, 0.1), 0, 1)  # ranks well, but nearly all above 0.5
    probabilities = np.c_[1 - scores, scores]
    rule, threshold = choose_operating_point(labels, probabilities, prior=np.array([0.7, 0.3]))
    assert rule == "youden"
    best = max(youden(labels, scores, t) for t in np.unique(scores))
    assert youden(labels, scores, threshold) == best
    assert best > youden(labels, scores, 0.5) + 0.2  # the default rule calls almost everything class 1


def test_the_validation_threshold_rescues_a_model_collapsed_at_one_half():
    rng = np.random.default_rng(0)
    def draw(n):
        labels = (rng.random(n) < 0.3).astype(int)
        scores = np.clip(rng.normal(0.6 + 0.15 * labels, 0.05), 0, 1)
        return labels, np.c_[1 - scores, scores]
    val_labels, val_probabilities = draw(200)
    test_labels, test_probabilities = draw(400)
    prior = np.array([0.7, 0.3])
    rule, point = choose_operating_point(val_labels, val_probabilities, prior)
    at_half = (test_probabilities[:, 1] >= 0.5).astype(int)
    assert (at_half == 1).mean() > 0.95  # collapsed at the default rule
    scores = operating_metrics(test_labels, test_probabilities, rule, point, prior)
    assert scores["balanced_accuracy_op"] > 0.85 and scores["accuracy_op"] > 0.85


def test_one_class_validation_keeps_the_default_threshold():
    assert choose_operating_point(np.zeros(5, int), np.full((5, 2), 0.5), np.array([0.5, 0.5])) == ("youden", 0.5)


def test_multiclass_prior_correction_is_chosen_on_validation():
    rng = np.random.default_rng(1)
    labels = rng.choice(3, 300, p=[0.6, 0.3, 0.1])
    logits = rng.normal(0, 1, (300, 3)) + 1.2 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    prior = np.array([0.6, 0.3, 0.1])
    rule, t = choose_operating_point(labels, probabilities, prior)
    assert rule == "prior" and -1 <= t <= 1
    from sklearn.metrics import balanced_accuracy_score
    chosen = balanced_accuracy_score(labels, apply_operating_point(probabilities, rule, t, prior))
    assert chosen >= balanced_accuracy_score(labels, probabilities.argmax(axis=1))  # t = 0 is a candidate
    np.testing.assert_array_equal(apply_operating_point(probabilities, "prior", 0.0, prior), probabilities.argmax(1))


def test_no_ranking_and_collapsed_cells_are_told_apart():
    cells = pd.DataFrame({
        "status": "done", "arm": ["scratch", "frozen", "finetune(depth=2)"],
        "strategy": ["scratch", "frozen", "finetune"], "depth": ["all", "0", "2"], "truncate_at": None,
        "fraction": 1.0, "seed": [0, 1, 2],
        "run_id": ["r0", "r1", "r2"], "auc": [0.51, 0.90, 0.85], "max_predicted_share": [0.6, 0.99, 0.7],
    })
    marked = flagged(cells).set_index("arm")
    assert marked["no_ranking"].tolist() == [True, False, False]
    assert marked["collapsed"].tolist() == [False, True, False]
    assert marked["degenerate"].tolist() == [True, True, False]
    assert excluded_for("auc", cells).tolist() == [True, False, False]  # a collapsed model still ranks
    assert excluded_for("accuracy", cells).tolist() == [True, True, False]
    assert excluded_for("accuracy_op", cells).tolist() == [True, False, False]
