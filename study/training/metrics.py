"""Classification metrics of one model on one split, from labels and predicted probabilities."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as sk

from study.core.operating_point import apply_operating_point


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, top-2 accuracy (3+ classes, else NaN), balanced accuracy, macro one-vs-rest AUC, macro F1,
    log loss, and the degeneracy indicators majority_rate and max_predicted_share.

    The macro metrics (AUC, balanced accuracy, F1) average over every class: where labels lack a class they are
    NaN, not an average over the classes present, which would measure another task (scikit-learn warns or raises).
    """
    n_classes = probabilities.shape[1]
    classes = np.arange(n_classes)
    predicted = probabilities.argmax(axis=1)
    measured = every_class(labels, n_classes)
    return {
        "accuracy": float(sk.accuracy_score(labels, predicted)),
        "top2_accuracy": (
            float(sk.top_k_accuracy_score(labels, probabilities, k=2, labels=classes)) if n_classes > 2 else np.nan
        ),
        **_macro(labels, predicted, n_classes, measured),
        "auc": _auc(labels, probabilities) if measured else np.nan,
        "log_loss": _log_loss(labels, probabilities, classes),
        "majority_rate": float(np.bincount(labels, minlength=n_classes).max() / len(labels)),
        "max_predicted_share": float(np.bincount(predicted, minlength=n_classes).max() / len(labels)),
    }


def every_class(labels: np.ndarray, n_classes: int) -> bool:
    """Whether labels hold every one of the n_classes classes, so that averages over classes are defined."""
    return len(np.unique(labels)) == n_classes


def _macro(labels: np.ndarray, predicted: np.ndarray, n_classes: int, measured: bool, suffix: str = "") -> dict:
    """Balanced accuracy and macro F1 over every class; NaN unless labels hold every class (measured)."""
    if not measured:
        return {f"balanced_accuracy{suffix}": np.nan, f"f1_macro{suffix}": np.nan}
    return {f"balanced_accuracy{suffix}": float(sk.balanced_accuracy_score(labels, predicted)),
            f"f1_macro{suffix}": float(sk.f1_score(labels, predicted, average="macro", labels=np.arange(n_classes),
                                                   zero_division=0))}


def _auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    if probabilities.shape[1] == 2:
        return float(sk.roc_auc_score(labels, probabilities[:, 1]))
    # macro one-vs-rest over every class
    return float(np.mean([sk.roc_auc_score(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])]))


def _log_loss(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Log loss with probabilities clipped to [1e-7, 1] (a confident wrong prediction costs at most 16.1)."""
    with warnings.catch_warnings():  # clipping lifts rows with near-zero entries a little above a sum of one
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
        return float(sk.log_loss(labels, np.clip(probabilities, 1e-7, 1.0), labels=classes))


def ordinal_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """For ordered classes (grades): Cohen's kappa with quadratic weights and the mean absolute error of the
    predicted class (the most probable one), in classes; kappa is NaN where it is undefined (one class only)."""
    predicted = probabilities.argmax(axis=1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = sk.cohen_kappa_score(labels, predicted, weights="quadratic")
    return {"kappa_quadratic": float(kappa), "mae_class": float(sk.mean_absolute_error(labels, predicted))}


PRIOR_EXPONENTS = np.round(np.linspace(-1.0, 1.0, 21), 2)  # multi-class: candidate t of p_c * prior_c^t


def choose_operating_point(labels: np.ndarray, probabilities: np.ndarray, prior: np.ndarray) -> tuple[str, float]:
    """The decision rule chosen on validation labels and probabilities only.

    Binary: ("youden", threshold) on P(class 1) maximising Youden's J = sensitivity + specificity - 1 (equivalently
    the balanced accuracy); 0.5 when the validation split holds one class. 3+ classes: ("prior", t), predicting
    argmax of p_c * prior_c^t for the t of PRIOR_EXPONENTS with the best validation balanced accuracy (t = 0 is the
    plain argmax; prior: the training subset's class shares).
    """
    if probabilities.shape[1] == 2:
        if len(np.unique(labels)) < 2:
            return "youden", 0.5
        false_positive, true_positive, thresholds = sk.roc_curve(labels, probabilities[:, 1])
        best = int(np.argmax(true_positive - false_positive))
        return "youden", float(min(thresholds[best], 1.0))
    scores = [sk.balanced_accuracy_score(labels, apply_operating_point(probabilities, "prior", t, prior))
              for t in PRIOR_EXPONENTS]
    return "prior", float(PRIOR_EXPONENTS[int(np.argmax(scores))])


def operating_metrics(labels: np.ndarray, probabilities: np.ndarray, rule: str, point: float,
                      prior: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 of the test predictions at the validation-chosen rule (the macro
    ones NaN where labels lack a class)."""
    predicted = apply_operating_point(probabilities, rule, point, prior)
    n_classes = probabilities.shape[1]
    return {"accuracy_op": float(sk.accuracy_score(labels, predicted)),
            **_macro(labels, predicted, n_classes, every_class(labels, n_classes), "_op")}
