"""Finished cells aggregated and selected: per-arm, per-fraction summaries over seeds, degenerate flags, the
stable arm order, and the choice of a strategy's representative arm or best cell by validation score.

Pure pandas/scipy: everything is rebuilt from the results store alone, without TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING

import pandas as pd
from scipy import stats

from study.analysis.stats import CONFIDENCE
from study.core.vocabulary import LOWER_IS_BETTER, METRICS, CellStatus
from study.protocol.strategy_registry import arm_sort_key

if TYPE_CHECKING:
    from study.store.results import ResultStore

# metrics that do not depend on the default argmax rule: a cell collapsed to one class at that rule keeps them
RULE_FREE_METRICS = {"auc", "log_loss", "accuracy_op", "balanced_accuracy_op", "f1_macro_op"}
# the range of each bounded metric: intervals are clipped to it wherever they are shown
RANGES = {metric: (0.0, 1.0) for metric in ["accuracy", "auc", "balanced_accuracy", "f1_macro", "top2_accuracy",
                                            "accuracy_op", "balanced_accuracy_op", "f1_macro_op"]}
RANGES |= {"log_loss": (0.0, math.inf), "kappa_quadratic": (-1.0, 1.0), "mae_class": (0.0, math.inf)}
UNBOUNDED = (-math.inf, math.inf)
STATS = ["mean", "std", "ci_low", "ci_high"]
KEYS = ["arm", "fraction"]
ARM_COLUMNS = ["arm", "strategy", "depth", "truncate_at"]  # a stored cell's columns that say which arm it is

NO_RANKING_AUC_MARGIN = 0.02  # a cell whose AUC is closer than this to chance (0.5) ranks nothing: no ranking
COLLAPSE_SHARE = 0.95  # a cell predicting this share of test images as one class at argmax: collapsed at 0.5


def done_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells whose status is done (none when the frame has no status column)."""
    if "status" not in cells.columns:
        return cells.iloc[0:0]
    return cells[cells["status"] == CellStatus.DONE]


def flagged(cells: pd.DataFrame) -> pd.DataFrame:
    """The done cells with boolean `no_ranking`, `collapsed` and `degenerate` (either) columns, in a stable order
    (arm order, fraction, seed)."""
    done = done_cells(cells)
    if done.empty:
        return done.assign(**{flag: pd.Series(dtype=bool) for flag in ("no_ranking", "collapsed", "degenerate")})
    rank = {arm: i for i, arm in enumerate(arm_order(done))}
    done = done.assign(no_ranking=no_ranking(done), collapsed=collapsed(done), degenerate=is_degenerate(done),
                       _rank=done["arm"].map(rank))
    done = done.sort_values(["_rank", "fraction", "seed", "run_id"], kind="mergesort")
    return done.drop(columns="_rank").reset_index(drop=True)


def of_plan(cells: pd.DataFrame, planned: Collection[str]) -> tuple[pd.DataFrame, int]:
    """The stored cells the protocol plans (by run id: the protocol's settings, seed, fraction and data), in the input
    order; and how many other stored cells there are (results of another version of the protocol or its data, kept
    in the store and never used in place of a planned cell)."""
    if cells.empty:
        return cells, 0
    inside = cells["run_id"].isin(set(planned))
    return cells[inside].reset_index(drop=True), int((~inside).sum())


def finished_cells(store: ResultStore, planned: Collection[str]) -> pd.DataFrame:
    """The finished results: the planned cells the store holds as done, flagged as `flagged` does, in arm,
    fraction and seed order."""
    return flagged(of_plan(store.cells(), planned)[0])


def no_ranking(cells: pd.DataFrame) -> pd.Series:
    """True for cells whose test AUC is within NO_RANKING_AUC_MARGIN of chance: the model ranks nothing."""
    auc = pd.to_numeric(cells["auc"], errors="coerce")
    return ((auc - 0.5).abs() < NO_RANKING_AUC_MARGIN).rename("no_ranking")


def collapsed(cells: pd.DataFrame) -> pd.Series:
    """True for cells that predict one class for at least COLLAPSE_SHARE of the test images at the argmax rule
    (a threshold problem: such a model may still rank well)."""
    share = pd.to_numeric(cells["max_predicted_share"], errors="coerce")
    return (share >= COLLAPSE_SHARE).rename("collapsed")


def is_degenerate(cells: pd.DataFrame) -> pd.Series:
    """True for cells with no ranking or collapsed at the argmax rule (the cells marked in the tables)."""
    return (no_ranking(cells) | collapsed(cells)).rename("degenerate")


def excluded_for(metric: str, cells: pd.DataFrame) -> pd.Series:
    """The cells a claim on `metric` leaves out when it excludes degenerate cells: those with no ranking, and
    for metrics of the argmax rule (accuracy, balanced accuracy, F1, top-2) also the collapsed ones."""
    return no_ranking(cells) if metric in RULE_FREE_METRICS else is_degenerate(cells)


def arm_order(cells: pd.DataFrame) -> list[str]:
    """The distinct arms of cells (frames with the stored ARM_COLUMNS) in the stable report order: scratch, frozen,
    finetune by depth (numbers, then all), truncate by cut (study.protocol.strategy_registry.arm_sort_key)."""
    arms = cells[ARM_COLUMNS].drop_duplicates("arm")
    keys = [arm_sort_key(strategy, str(depth), None if pd.isna(at) else int(at), str(arm))
            for arm, strategy, depth, at in arms.itertuples(index=False)]
    return [key[-1] for key in sorted(keys)]


def arms_in_rows(frame: pd.DataFrame, *columns: str) -> list[str]:
    """The distinct arms of an analysis table's arm columns (default: arm), in its row order: the analysis puts
    its rows in arm order."""
    values = pd.concat([frame[column] for column in columns or ("arm",)], ignore_index=True)
    return [str(arm) for arm in dict.fromkeys(values)]


def interval(values: pd.Series, bounds: tuple[float, float] = UNBOUNDED) -> tuple[float, float, float, float]:
    """Mean, std (ddof=1) and the Student-t 95% interval of the mean of the non-missing values, the interval clipped
    to the metric's range (bounds): a bounded metric's mean cannot lie outside it."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    n = len(values)
    mean, std = values.mean(), values.std(ddof=1)
    if n < 2:
        return mean, std, math.nan, math.nan
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    low, high = bounds
    return mean, std, max(low, mean - half), min(high, mean + half)


def summary_columns(metrics: list[str]) -> list[str]:
    """Column names of a summary over these metrics."""
    return [*KEYS, "n_train", "n_seeds", *(f"{m}_{s}" for m in metrics for s in STATS), "degenerate"]


def summarize(cells: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (arm, fraction) over done cells: n_train, n_seeds, metric statistics, degenerate count."""
    metrics = list(METRICS if metrics is None else metrics)
    done = done_cells(cells)
    if done.empty:
        return pd.DataFrame(columns=summary_columns(metrics))
    done = done.assign(**{metric: math.nan for metric in metrics if metric not in done.columns})  # older stores
    done = done.assign(degenerate=is_degenerate(done)).sort_values([*KEYS, "seed"], kind="mergesort")
    rows = [_summarize_group(arm, fraction, group, metrics) for (arm, fraction), group in done.groupby(KEYS, sort=False)]
    frame = pd.DataFrame(rows, columns=summary_columns(metrics))
    rank = {arm: i for i, arm in enumerate(arm_order(done))}
    order = frame.assign(_rank=frame["arm"].map(rank)).sort_values(["_rank", "fraction"], kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def _summarize_group(arm: str, fraction: float, group: pd.DataFrame, metrics: list[str]) -> dict:
    row = {"arm": str(arm), "fraction": float(fraction), "n_train": int(round(group["n_train"].mean())), "n_seeds": len(group)}
    for metric in metrics:
        row.update(zip((f"{metric}_{s}" for s in STATS), interval(group[metric], RANGES.get(metric, UNBOUNDED))))
    row["degenerate"] = int(group["degenerate"].sum())
    return row


# ------------------------------------------------------------------------------------------- selection
def of_names(cells: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The cells of the named arms and strategies; a name that is an arm's label means that arm alone.

    So "scratch" is the scratch arm of the protocol's backbone, not also "scratch[cnn-16]".
    """
    labels = set(cells["arm"])
    strategies = [name for name in names if name not in labels]
    return cells[cells["arm"].isin(names) | cells["strategy"].isin(strategies)]


def validation_score(cells: pd.DataFrame) -> pd.Series:
    """The stored validation value (monitor_value) oriented so that higher is better; NaN where none is stored."""
    if "monitor_value" not in cells.columns:
        return pd.Series(math.nan, index=cells.index)
    value = pd.to_numeric(cells["monitor_value"], errors="coerce")
    monitor = cells["monitor"] if "monitor" in cells.columns else pd.Series("", index=cells.index)
    return value.where(~monitor.isin(LOWER_IS_BETTER), -value)


def representative_arm(cells: pd.DataFrame, names: list[str], fraction: float) -> str | None:
    """The arm among names with the best mean validation score over seeds at this fraction (never a test metric).

    Ties, and arms without a stored validation value, fall back to the report's arm order.
    """
    pool = of_names(cells, names)
    pool = pool[pool["fraction"] == fraction]
    if pool.empty:
        return None
    means = validation_score(pool).groupby(pool["arm"]).mean()
    arms = arm_order(pool)
    return max(arms, key=lambda arm: (_finite(means.get(arm)), -arms.index(arm)))


def best_cell(cells: pd.DataFrame, names: list[str], fraction: float) -> pd.Series | None:
    """The single cell among names at this fraction with the best validation score (ties: arm order, then seed)."""
    pool = of_names(cells, names)
    pool = pool[pool["fraction"] == fraction]
    if pool.empty:
        return None
    rank = {arm: i for i, arm in enumerate(arm_order(pool))}
    keyed = pool.assign(_score=validation_score(pool).fillna(-math.inf), _rank=pool["arm"].map(rank))
    ordered = keyed.sort_values(["_score", "_rank", "seed", "run_id"], ascending=[False, True, True, True],
                                kind="mergesort")
    return ordered.iloc[0].drop(["_score", "_rank"])


def _finite(value) -> float:
    return -math.inf if value is None or pd.isna(value) else float(value)
