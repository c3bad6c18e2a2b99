"""Per-arm, per-fraction summaries of finished cells: mean, spread and a 95% interval over seeds.

Pure pandas/scipy: a summary is rebuilt from the results store alone, without TensorFlow.
"""

from __future__ import annotations

import math
import re

import pandas as pd
from scipy import stats

METRICS = ["accuracy", "auc", "balanced_accuracy", "f1_macro", "top2_accuracy", "log_loss"]
STATS = ["mean", "std", "ci_low", "ci_high"]
KEYS = ["arm", "fraction"]

CONFIDENCE = 0.95
DEGENERATE_SHARE = 0.95  # a cell predicting this share of test images as one class or more is degenerate
DEGENERATE_AUC_MARGIN = 0.02  # ... and so is one whose AUC is closer than this to chance (0.5)

_STRATEGY_RANK = {"scratch": 0, "frozen": 1, "finetune": 2, "truncate": 3}
_STRATEGY = re.compile(r"\s*([A-Za-z_]+)")
_PARAMETER = re.compile(r"(?:depth|at)\s*=\s*([^,)\s]+)")


def done_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells whose status is "done" (none when the frame has no status column)."""
    if "status" not in cells.columns:
        return cells.iloc[0:0]
    return cells[cells["status"] == "done"]


def is_degenerate(cells: pd.DataFrame) -> pd.Series:
    """True for cells that predict (almost) a single class or rank no better than chance."""
    share = pd.to_numeric(cells["max_predicted_share"], errors="coerce")
    auc = pd.to_numeric(cells["auc"], errors="coerce")
    return ((share >= DEGENERATE_SHARE) | ((auc - 0.5).abs() < DEGENERATE_AUC_MARGIN)).rename("degenerate")


def arm_sort_key(arm: str) -> tuple:
    """Sort key: scratch, frozen, finetune by depth (numeric, then "all"), truncate by cut, then others."""
    match = _STRATEGY.match(arm)
    strategy = match.group(1) if match else arm
    parameter = _PARAMETER.search(arm)
    return (_STRATEGY_RANK.get(strategy, len(_STRATEGY_RANK)), strategy, _parameter_rank(parameter), arm)


def _parameter_rank(match: re.Match | None) -> float:
    if match is None:
        return -math.inf
    try:
        return float(match.group(1))
    except ValueError:  # "all" and other words come after every number
        return math.inf


def arm_order(arms) -> list[str]:
    """The distinct arms in the stable report order."""
    return sorted({str(arm) for arm in arms}, key=arm_sort_key)


def interval(values: pd.Series) -> tuple[float, float, float, float]:
    """Mean, std (ddof=1) and the Student-t 95% interval of the mean of the non-missing values."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    n = len(values)
    mean, std = values.mean(), values.std(ddof=1)
    if n < 2:
        return mean, std, math.nan, math.nan
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def summary_columns(metrics: list[str]) -> list[str]:
    """Column names of a summary over these metrics."""
    return [*KEYS, "n_train", "n_seeds", *(f"{m}_{s}" for m in metrics for s in STATS), "degenerate"]


def summarize(cells: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (arm, fraction) over done cells: n_train, n_seeds, metric statistics, degenerate count."""
    metrics = list(METRICS if metrics is None else metrics)
    done = done_cells(cells)
    if done.empty:
        return pd.DataFrame(columns=summary_columns(metrics))
    done = done.assign(degenerate=is_degenerate(done)).sort_values([*KEYS, "seed"], kind="mergesort")
    rows = [_summarize_group(arm, fraction, group, metrics) for (arm, fraction), group in done.groupby(KEYS, sort=False)]
    frame = pd.DataFrame(rows, columns=summary_columns(metrics))
    rank = {arm: i for i, arm in enumerate(arm_order(frame["arm"]))}
    order = frame.assign(_rank=frame["arm"].map(rank)).sort_values(["_rank", "fraction"], kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def _summarize_group(arm: str, fraction: float, group: pd.DataFrame, metrics: list[str]) -> dict:
    row = {"arm": str(arm), "fraction": float(fraction), "n_train": int(round(group["n_train"].mean())), "n_seeds": len(group)}
    for metric in metrics:
        row.update(zip((f"{metric}_{s}" for s in STATS), interval(group[metric])))
    row["degenerate"] = int(group["degenerate"].sum())
    return row
