"""Classification metrics of one model on one split, from labels and predicted probabilities."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as sk

METRICS = ("accuracy", "top2_accuracy", "balanced_accuracy", "auc", "f1_macro", "log_loss")


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, top-2 accuracy (3+ classes, else NaN), balanced accuracy, macro one-vs-rest AUC, macro F1,
    log loss, and the degeneracy indicators majority_rate and max_predicted_share."""
    n_classes = probabilities.shape[1]
    classes = np.arange(n_classes)
    predicted = probabilities.argmax(axis=1)
    present = np.unique(labels)
    result = {
        "accuracy": float(sk.accuracy_score(labels, predicted)),
        "top2_accuracy": (
            float(sk.top_k_accuracy_score(labels, probabilities, k=2, labels=classes)) if n_classes > 2 else np.nan
        ),
        "balanced_accuracy": float(sk.balanced_accuracy_score(labels, predicted)),
        "auc": _auc(labels, probabilities, present),
        "f1_macro": float(sk.f1_score(labels, predicted, average="macro", labels=present, zero_division=0)),
        "log_loss": _log_loss(labels, probabilities, classes),
        "majority_rate": float(np.bincount(labels, minlength=n_classes).max() / len(labels)),
        "max_predicted_share": float(np.bincount(predicted, minlength=n_classes).max() / len(labels)),
    }
    return result


def _auc(labels: np.ndarray, probabilities: np.ndarray, present: np.ndarray) -> float:
    if len(present) < 2:
        return np.nan
    if probabilities.shape[1] == 2:
        return float(sk.roc_auc_score(labels, probabilities[:, 1]))
    # macro one-vs-rest over the classes present in this split
    scores = [sk.roc_auc_score(labels == c, probabilities[:, c]) for c in present]
    return float(np.mean(scores))


def _log_loss(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Log loss with probabilities clipped to [1e-7, 1] (a confident wrong prediction costs at most 16.1)."""
    with warnings.catch_warnings():  # clipping lifts rows with near-zero entries a little above a sum of one
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
        return float(sk.log_loss(labels, np.clip(probabilities, 1e-7, 1.0), labels=classes))
