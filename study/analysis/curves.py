"""Learning curves: an inverse power law y = a - b * n**(-c) fitted per arm, and the training size it needs to
reach a target metric value (Figueroa et al. 2012; Cho et al. 2015).

The fit is weighted non-linear least squares (scipy.optimize.curve_fit) on the per-size means over seeds, each
weighted by its standard error; b >= 0 and c > 0 make the curve rise monotonically towards its asymptote a <= 1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

MIN_SIZES = 4  # three parameters plus one degree of freedom
SIGMA_FLOOR = 0.005  # smallest standard error a point may have (metric units), so that no point gets infinite weight
BOUNDS = ([0.0, 0.0, 0.01], [1.0, np.inf, 3.0])  # a, b, c
CURVE_COLUMNS = ["arm", "n_sizes", "a", "b", "c", "rmse", "target", "n_needed", "note", "degenerate"]


def inverse_power_law(n, a: float, b: float, c: float):
    """a - b * n**(-c): the metric at training size n."""
    return a - b * np.power(np.asarray(n, dtype=float), -c)


@dataclass(frozen=True)
class Fit:
    """Fitted parameters of one arm's curve, or the reason there are none (a, b, c NaN)."""

    a: float
    b: float
    c: float
    rmse: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return not math.isnan(self.a)


def fit_curve(n, mean, sem) -> Fit:
    """Fit the inverse power law to per-size means with their standard errors (NaN where a size has one seed)."""
    n, mean, sem = (np.asarray(v, dtype=float) for v in (n, mean, sem))
    keep = ~np.isnan(mean)
    n, mean, sem = n[keep], mean[keep], sem[keep]
    if len(np.unique(n)) < MIN_SIZES:
        return _failed(f"not fitted: {len(np.unique(n))} training sizes, the fit needs {MIN_SIZES} or more")
    known = sem[~np.isnan(sem)]
    sigma = np.maximum(np.where(np.isnan(sem), known.max() if len(known) else 1.0, sem), SIGMA_FLOOR)
    a0 = min(1.0, mean.max() + 0.01)
    start = [a0, max((a0 - mean.min()) * math.sqrt(n.min()), 1e-3), 0.5]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            params, _ = curve_fit(inverse_power_law, n, mean, p0=start, sigma=sigma, absolute_sigma=True,
                                  bounds=BOUNDS, method="trf", max_nfev=20000)
    except (RuntimeError, ValueError, OptimizeWarning) as exc:
        return _failed(f"fit failed: {str(exc).splitlines()[0]}")
    rmse = float(np.sqrt(np.mean((inverse_power_law(n, *params) - mean) ** 2)))
    a, b, c = (float(p) for p in params)
    return Fit(a, b, c, rmse)


def _failed(note: str) -> Fit:
    return Fit(math.nan, math.nan, math.nan, math.nan, note)


def size_needed(fit: Fit, target: float, n_measured) -> tuple[float, str]:
    """The training size at which the fitted curve reaches target, with a note; NaN and the reason if it never does."""
    if not fit.ok:
        return math.nan, f"not reached: {fit.note}"
    if fit.a <= target:
        return math.nan, f"not reached: the fitted asymptote a = {fit.a:.3f} is not above the target {target:g}"
    if fit.b == 0:
        return math.nan, "not estimated: the fitted curve is flat (b = 0)"
    needed = (fit.b / (fit.a - target)) ** (1.0 / fit.c)
    low, high = float(np.min(n_measured)), float(np.max(n_measured))
    if needed > high:
        return needed, f"extrapolated: {needed / high:.1f} x the largest training size measured ({high:g})"
    if needed < low:
        return needed, f"below the smallest training size measured ({low:g}): already reached there"
    return needed, "within the measured range"


def fit_curves(summary: pd.DataFrame, metric: str, target: float | None) -> pd.DataFrame:
    """One row per arm of a summary (analysis.summarize): the fit, and the size needed to reach target."""
    rows = []
    for arm, points in summary.groupby("arm", sort=False):
        points = points.sort_values("n_train")
        sem = points[f"{metric}_std"] / np.sqrt(points["n_seeds"])
        fit = fit_curve(points["n_train"], points[f"{metric}_mean"], sem)
        if target is None:
            needed, note = math.nan, fit.note or "no target set (report.target)"
        else:
            needed, note = size_needed(fit, target, points["n_train"])
        if fit.ok and fit.a >= BOUNDS[1][0] - 1e-6:
            note += "; a sits at its bound 1: the curve has not levelled off, so a and n needed are uncertain"
        rows.append({
            "arm": arm, "n_sizes": int(points[f"{metric}_mean"].notna().sum()), "a": fit.a, "b": fit.b, "c": fit.c,
            "rmse": fit.rmse, "target": math.nan if target is None else target,
            "n_needed": math.nan if math.isnan(needed) else float(math.ceil(needed)), "note": note,
            "degenerate": int(points["degenerate"].sum()),
        })
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
