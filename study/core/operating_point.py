"""The decision rules of an operating point, written once: the worker chooses a rule on the validation split and
classifies the test images with it; the report applies the stored rule to the stored test probabilities again."""

from __future__ import annotations

import numpy as np


def apply_operating_point(probabilities: np.ndarray, rule: str, point: float, prior: np.ndarray) -> np.ndarray:
    """Predicted classes under a rule: "youden" predicts class 1 where P(class 1) >= point; "prior" predicts the
    class of highest p_c * prior_c^point (prior: the training subset's class shares)."""
    if rule == "youden":
        return (probabilities[:, 1] >= point).astype(np.int64)
    weights = np.power(np.clip(prior, 1e-12, None), point)
    return (probabilities * weights).argmax(axis=1)
