"""Inverse-power-law learning curves: the fit recovers known curves and the training size needed is honest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from study.analysis.curves import (
    Fit,
    fit_curve,
    fit_curves,
    inverse_power_law,
    size_needed,
)

SIZES = np.array([20, 50, 100, 200, 500, 1000])


def test_fit_recovers_a_noiseless_curve():
    mean = inverse_power_law(SIZES, 0.92, 1.5, 0.6)
    fit = fit_curve(SIZES, mean, np.full(len(SIZES), 0.01))
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.92, 1.5, 0.6), rel=1e-4)
    assert fit.rmse < 1e-6 and fit.ok


def test_weights_follow_the_standard_errors():
    mean = inverse_power_law(SIZES, 0.9, 1.0, 0.5)
    mean[0] += 0.1  # an outlier at the smallest size...
    loose = fit_curve(SIZES, mean, np.array([1.0, 0.01, 0.01, 0.01, 0.01, 0.01]))  # ...with a large standard error
    tight = fit_curve(SIZES, mean, np.full(len(SIZES), 0.01))
    assert abs(loose.a - 0.9) < abs(tight.a - 0.9)
    assert loose.a == pytest.approx(0.9, abs=0.01)


def test_size_needed_solves_the_fitted_curve():
    fit = Fit(0.9, 1.0, 0.5, 0.0)
    needed, note = size_needed(fit, 0.85, SIZES)
    assert needed == pytest.approx((1.0 / 0.05) ** 2) and needed == pytest.approx(400)
    assert note == "within the measured range"
    assert inverse_power_law(needed, 0.9, 1.0, 0.5) == pytest.approx(0.85)
    far, note = size_needed(fit, 0.89, SIZES)
    assert far == pytest.approx(10000) and note.startswith("extrapolated: 10.0 x")


@pytest.mark.parametrize("fit, target, expected", [
    (Fit(0.8, 1.0, 0.5, 0.0), 0.85, "not reached: the fitted asymptote a = 0.800 is not above the target 0.85"),
    (Fit(math.nan, math.nan, math.nan, math.nan, "fit failed: x"), 0.85, "not reached: fit failed: x"),
])
def test_size_needed_says_why_it_is_not_reached(fit, target, expected):
    needed, note = size_needed(fit, target, SIZES)
    assert math.isnan(needed) and note == expected


def test_too_few_sizes_are_not_fitted():
    fit = fit_curve([20, 50, 100], [0.6, 0.7, 0.75], [0.01, 0.01, 0.01])
    assert not fit.ok and fit.note == "not fitted: 3 training sizes, the fit needs 4 or more"


def test_fit_is_monotone_even_on_falling_data():
    fit = fit_curve(SIZES, [0.8, 0.78, 0.76, 0.75, 0.74, 0.73], np.full(6, 0.01))
    assert fit.b >= 0 and fit.c > 0  # bounded: a falling curve is fitted as a flat one at best


def test_fit_curves_per_arm_from_a_summary():
    rows = []
    for arm, a in (("frozen", 0.8), ("finetune(depth=all)", 0.95)):
        for n in SIZES:
            rows.append({"arm": arm, "fraction": n / 1000, "n_train": n, "n_seeds": 3, "degenerate": 0,
                         "auc_mean": float(inverse_power_law(n, a, 1.0, 0.5)), "auc_std": 0.01})
    curves = fit_curves(pd.DataFrame(rows), "auc", 0.9).set_index("arm")
    assert curves.at["frozen", "note"].startswith("not reached: the fitted asymptote")
    assert curves.at["finetune(depth=all)", "n_needed"] == pytest.approx(400, abs=1)  # ceil of the fitted 400
    untargeted = fit_curves(pd.DataFrame(rows), "auc", None)
    assert untargeted["note"].tolist() == ["no target set (report.target)"] * 2
