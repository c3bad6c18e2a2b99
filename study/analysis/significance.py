"""Significance tables over flagged done cells (see analysis.flagged): pairwise tests per fraction paired by seed
(with the stored predictions also the two-level bootstrap over seeds and test images, see study.analysis.resampling),
Friedman with Nemenyi across arms, and McNemar on the per-image correctness of two strategies' best cells.

Degenerate cells stay in these tables (they describe what was run) and are counted in their `degenerate_*` columns.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from study.analysis.delong import delong_test
from study.analysis.resampling import (
    Predictions,
    matched_predictions,
    two_level_bootstrap,
)
from study.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    add_holm,
    average_ranks,
    friedman,
    mcnemar_exact,
    nemenyi_cd,
    paired_comparison,
)
from study.analysis.summaries import arm_order, best_cell, validation_score
from study.core.vocabulary import higher_is_better

PAIRWISE_COLUMNS = [
    "fraction", "arm_a", "arm_b", "n_pairs", "mean_diff", "ci_low", "ci_high", "t_stat", "t_p", "t_p_holm",
    "w_stat", "w_p", "w_p_holm", "ci2_low", "ci2_high", "p_a_beats_b", "degenerate_a", "degenerate_b",
]
TWO_LEVEL_RESAMPLES = 1000  # per pair of the pairwise table (a claim's interval uses resampling.RESAMPLES)
FRIEDMAN_COLUMNS = ["fraction", "n_arms", "n_seeds", "chi2", "p", "cd", "note"]
RANK_COLUMNS = ["fraction", "arm", "mean_rank", "degenerate"]
NEMENYI_COLUMNS = ["fraction", "arm_a", "arm_b", "rank_diff", "cd", "significant"]
MCNEMAR_COLUMNS = [
    "a", "b", "fraction", "arm_a", "seed_a", "arm_b", "seed_b", "n_images", "both_correct", "only_a", "only_b",
    "both_wrong", "accuracy_a", "accuracy_b", "p", "p_holm", "auc_a", "auc_b", "delong_z", "delong_p",
    "delong_p_holm", "degenerate_a", "degenerate_b", "note",
]


def paired_values(cells: pd.DataFrame, metric: str, arm_a: str, arm_b: str, fraction: float) -> pd.DataFrame:
    """Columns seed, a, b, degenerate_a, degenerate_b: the two arms' values at one fraction, matched by seed."""
    at = cells[cells["fraction"] == fraction]
    sides = [
        at.loc[at["arm"] == arm, ["seed", metric, "degenerate"]].rename(
            columns={metric: side, "degenerate": f"degenerate_{side}"})
        for arm, side in ((arm_a, "a"), (arm_b, "b"))
    ]
    merged = sides[0].merge(sides[1], on="seed").dropna(subset=["a", "b"])
    return merged.sort_values("seed", kind="mergesort").reset_index(drop=True)


def pairwise_table(cells: pd.DataFrame, metric: str, resamples: int = BOOTSTRAP_RESAMPLES,
                   predictions: Predictions | None = None) -> pd.DataFrame:
    """Every pair of arms at every fraction: mean of a - b over seeds with its bootstrap interval, paired t-test and
    Wilcoxon test, each Holm-adjusted within its fraction (the family is all pairs at that fraction); with the
    stored predictions, the two-level interval of a - b and P(A > B) too (NaN without)."""
    rows = []
    for fraction in sorted(cells["fraction"].unique()):
        arms = arm_order(cells[cells["fraction"] == fraction])
        family = []
        for arm_a, arm_b in itertools.combinations(arms, 2):
            pairs = paired_values(cells, metric, arm_a, arm_b, fraction)
            result = paired_comparison(pairs["a"], pairs["b"], resamples=resamples)
            family.append({
                "fraction": float(fraction), "arm_a": arm_a, "arm_b": arm_b, "n_pairs": result.n,
                "mean_diff": result.mean_diff, "ci_low": result.ci_low, "ci_high": result.ci_high,
                "t_stat": result.t_stat, "t_p": result.t_p, "w_stat": result.w_stat, "w_p": result.w_p,
                "degenerate_a": int(pairs["degenerate_a"].sum()), "degenerate_b": int(pairs["degenerate_b"].sum()),
            } | _two_level(cells, metric, arm_a, arm_b, fraction, pairs["seed"], predictions))
        add_holm(family, ("t_p", "w_p"))
        rows += family
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def _two_level(cells, metric: str, arm_a: str, arm_b: str, fraction: float, seeds, predictions) -> dict:
    """The pair's two-level bootstrap at one fraction: the 95% interval of a - b and P(A > B) (a better, whichever
    way the metric points); NaN without the predictions of every paired cell or for a metric not recomputed."""
    by_seed = None if predictions is None else matched_predictions(cells, fraction, arm_a, arm_b, seeds, predictions)
    sign = 1.0 if higher_is_better(metric) else -1.0
    both = two_level_bootstrap({fraction: by_seed} if by_seed else {}, metric, sign, resamples=TWO_LEVEL_RESAMPLES)
    low, high = sorted((sign * both.ci_low, sign * both.ci_high))
    return {"ci2_low": low, "ci2_high": high, "p_a_beats_b": both.p_a_beats_b}


def friedman_tables(cells: pd.DataFrame, metric: str, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per fraction, the Friedman test across arms over the seeds that every arm finished (complete blocks), the
    Nemenyi critical difference, and each arm's mean rank (1 = best). Needs 3+ arms and 2+ complete seeds."""
    tests: list[dict[str, Any]] = []
    ranks: list[dict[str, Any]] = []
    for fraction in sorted(cells["fraction"].unique()):
        at = cells[cells["fraction"] == fraction]
        arms = arm_order(at)
        table = at.pivot_table(index="seed", columns="arm", values=metric, aggfunc="first").reindex(columns=arms)
        complete = table.dropna()
        k, n = len(arms), len(complete)
        row = {"fraction": float(fraction), "n_arms": k, "n_seeds": n, "chi2": math.nan, "p": math.nan, "cd": math.nan}
        if k < 3:
            tests.append(row | {"note": f"not run: {k} arm(s), the Friedman test needs 3 or more"})
            continue
        if n < 2:
            tests.append(row | {"note": f"not enough seeds: {n} seed(s) finished by every arm, the test needs 2+"})
            continue
        chi2, p = friedman(complete.to_numpy())
        tests.append(row | {"chi2": chi2, "p": p, "cd": nemenyi_cd(k, n, alpha), "note": ""})
        mean_ranks = average_ranks(complete.to_numpy(), higher_is_better(metric))
        used = at[at["seed"].isin(complete.index)]
        for arm, rank in zip(arms, mean_ranks):
            degenerate = int(used.loc[used["arm"] == arm, "degenerate"].sum())
            ranks.append({"fraction": float(fraction), "arm": arm, "mean_rank": float(rank), "degenerate": degenerate})
    return pd.DataFrame(tests, columns=FRIEDMAN_COLUMNS), pd.DataFrame(ranks, columns=RANK_COLUMNS)


def _delong_columns(merged: pd.DataFrame) -> dict:
    """DeLong's paired AUC test of the two cells' P(class 1) on the images both predicted (two classes only)."""
    if "prob_1_a" not in merged or "prob_2_a" in merged or merged["label_a"].nunique() < 2:
        return {}
    result = delong_test(merged["label_a"].to_numpy(), merged["prob_1_a"].to_numpy(), merged["prob_1_b"].to_numpy())
    return {"auc_a": result.auc_a, "auc_b": result.auc_b, "delong_z": result.z, "delong_p": result.p}


def nemenyi_table(tests: pd.DataFrame, ranks: pd.DataFrame) -> pd.DataFrame:
    """Every pair of arms at each tested fraction: difference of mean ranks, and whether it exceeds the CD."""
    rows = []
    for test in tests.dropna(subset=["cd"]).itertuples(index=False):
        at = ranks[ranks["fraction"] == test.fraction]
        for a, b in itertools.combinations(at.itertuples(index=False), 2):
            diff = abs(a.mean_rank - b.mean_rank)
            rows.append({"fraction": test.fraction, "arm_a": a.arm, "arm_b": b.arm, "rank_diff": diff, "cd": test.cd,
                         "significant": bool(diff > test.cd)})
    return pd.DataFrame(rows, columns=NEMENYI_COLUMNS)


def mcnemar_table(
    cells: pd.DataFrame, pairs: list[tuple[str, str]], predictions: Callable[[str], pd.DataFrame | None],
    same_seed: bool = False,
) -> pd.DataFrame:
    """For each pair of strategies (or arms) and fraction, McNemar's exact test between the two best cells chosen
    by validation score, on the test images both predicted (matched by image_id), and for two classes DeLong's
    paired test of their AUCs on the same images; each Holm-adjusted over the fractions of each pair.

    same_seed (each seed has its own test set): the two cells come from one seed, the best pair of a seed."""
    rows = []
    for name_a, name_b in pairs:
        family = [_mcnemar_row(cells, name_a, name_b, f, predictions, same_seed)
                  for f in sorted(cells["fraction"].unique())]
        add_holm(family, ("p", "delong_p"))
        rows += family
    return pd.DataFrame(rows, columns=MCNEMAR_COLUMNS)


def _best_cells(cells: pd.DataFrame, name_a: str, name_b: str, fraction: float, same_seed: bool) -> dict:
    """side -> the best cell by validation score (None: no finished cell); with same_seed, the best cell of each
    side within the seed whose two best cells have the highest mean validation score (ties: the lowest seed)."""
    def best_of(pool: pd.DataFrame) -> dict:
        return {side: best_cell(pool, [name], fraction) for side, name in (("a", name_a), ("b", name_b))}

    if not same_seed:
        return best_of(cells)
    by_seed = [best_of(cells[cells["seed"] == seed]) for seed in sorted(cells["seed"].unique())]
    paired = [best for best in by_seed if all(cell is not None for cell in best.values())]
    if not paired:
        return {"a": None, "b": None}
    return max(paired, key=lambda best: sum(_validation(cell) for cell in best.values()))


def _validation(cell: pd.Series) -> float:
    """A cell's validation score, higher is better; -inf where none is stored."""
    return float(validation_score(cell.to_frame().T).fillna(-math.inf).iloc[0])


def _mcnemar_row(cells, name_a: str, name_b: str, fraction: float, predictions, same_seed: bool) -> dict:
    row = {"a": name_a, "b": name_b, "fraction": float(fraction), "p": math.nan, "note": ""}
    best = _best_cells(cells, name_a, name_b, fraction, same_seed)
    for side, cell in best.items():
        if cell is not None:
            row |= {f"arm_{side}": cell["arm"], f"seed_{side}": int(cell["seed"]),
                    f"degenerate_{side}": bool(cell["degenerate"])}
    if any(cell is None for cell in best.values()):
        missing = "no seed with a finished cell on both sides" if same_seed else "no finished cell on one side"
        return row | {"note": missing}
    if best["a"]["run_id"] == best["b"]["run_id"]:
        return row | {"note": "both sides chose the same cell"}
    frames = {side: predictions(cell["run_id"]) for side, cell in best.items()}
    if any(frame is None for frame in frames.values()):
        return row | {"note": "stored predictions missing"}
    merged = frames["a"].merge(frames["b"], on="image_id", suffixes=("_a", "_b"))
    correct = {side: (merged[f"predicted_{side}"] == merged[f"label_{side}"]).to_numpy() for side in ("a", "b")}
    result = mcnemar_exact(correct["a"], correct["b"])
    row |= _delong_columns(merged)
    return row | {
        "n_images": len(merged), "both_correct": result.both_correct, "only_a": result.only_a, "only_b": result.only_b,
        "both_wrong": result.both_wrong, "accuracy_a": float(np.mean(correct["a"])) if len(merged) else math.nan,
        "accuracy_b": float(np.mean(correct["b"])) if len(merged) else math.nan, "p": result.p,
    }
