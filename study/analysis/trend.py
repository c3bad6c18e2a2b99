"""Trend claims: does the arm that validation picks move along an ordered list of arms as the training data grows?

For each seed and fraction, the arm of the list with the best validation score (the stored `monitor_value`, never a
test metric) is chosen; its position in the list is paired with the fraction. Kendall's tau-b between fraction and
position is the effect, its two-sided p-value the test, and a bootstrap over seeds (whole seeds resampled) its 95%
interval. Tajbakhsh et al.'s claim 4, "fine-tune deeper as data grows", is such a trend over fine-tuning depths.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.summaries import validation_score
from study.core.vocabulary import Verdict
from study.protocol.schema import ClaimSpec

MIN_FRACTIONS = 3  # fewer fractions than this cannot show a trend
MIN_POINTS = 6  # (seed, fraction) choices needed for a verdict
TREND_RESAMPLES = 2000


def chosen_positions(cells: pd.DataFrame, arms: list[str], fractions: list[float]) -> pd.DataFrame:
    """One row per (seed, fraction) with a usable cell: the position in arms of the arm with the best validation score
    (ties go to the earlier arm)."""
    pool = cells[cells["arm"].isin(arms) & cells["fraction"].isin(fractions)]
    pool = pool.assign(_score=validation_score(pool), position=pool["arm"].map({a: i for i, a in enumerate(arms)}))
    pool = pool[pool["_score"].notna()].sort_values(["seed", "fraction", "_score", "position"],
                                                    ascending=[True, True, False, True], kind="mergesort")
    chosen = pool.drop_duplicates(["seed", "fraction"], keep="first")
    return chosen[["seed", "fraction", "arm", "position"]].reset_index(drop=True)


def kendall(chosen: pd.DataFrame) -> tuple[float, float]:
    """Kendall's tau-b between fraction and chosen position, and its two-sided p (NaN without variation)."""
    if chosen["fraction"].nunique() < 2 or chosen["position"].nunique() < 2:
        return math.nan, math.nan
    result = stats.kendalltau(chosen["fraction"], chosen["position"])
    return float(result.statistic), float(result.pvalue)


def seed_bootstrap(chosen: pd.DataFrame, resamples: int = TREND_RESAMPLES) -> tuple[float, float]:
    """95% percentile interval of tau when whole seeds are resampled with replacement (seed 0)."""
    seeds = chosen["seed"].unique()
    groups = {seed: chosen[chosen["seed"] == seed] for seed in seeds}
    rng = np.random.default_rng(0)
    taus = []
    for _ in range(resamples):
        sample = pd.concat([groups[seed] for seed in rng.choice(seeds, len(seeds))])
        tau, _ = kendall(sample)
        if not math.isnan(tau):
            taus.append(tau)
    if len(taus) < resamples / 2:
        return math.nan, math.nan
    low, high = np.percentile(taus, [2.5, 97.5])
    return float(low), float(high)


def trend_verdict(claim: ClaimSpec, chosen: pd.DataFrame, alpha: float) -> dict:
    """Verdict, reason, tau, its interval and p for a trend claim on the chosen positions."""
    fractions = chosen["fraction"].nunique()
    result = {"effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
              "seeds": int(chosen["seed"].nunique())}
    if fractions < MIN_FRACTIONS or len(chosen) < MIN_POINTS:
        return result | {"verdict": Verdict.INCONCLUSIVE,
                         "reason": f"{len(chosen)} choices at {fractions} fraction(s); "
                         f"a trend needs {MIN_FRACTIONS}+ fractions and {MIN_POINTS}+ choices"}
    tau, p = kendall(chosen)
    if math.isnan(tau):
        return result | {"verdict": Verdict.INCONCLUSIVE,
                         "reason": "validation picks the same arm everywhere: no trend"}
    low, high = seed_bootstrap(chosen)
    result |= {"effect": tau, "ci_low": low, "ci_high": high, "p": p}
    if p < alpha and tau > 0 and low > 0:
        return result | {"verdict": Verdict.SUPPORTED,
                         "reason": f"Kendall tau = {tau:.2f}, p = {p:.3g}, interval above 0"}
    if p < alpha and tau < 0 and high < 0:
        return result | {"verdict": Verdict.CONTRADICTED,
                         "reason": f"Kendall tau = {tau:.2f}, p = {p:.3g}, interval below 0"}
    why = f"p = {p:.3g}" if p >= alpha else "the seed bootstrap interval includes 0"
    return result | {"verdict": Verdict.INCONCLUSIVE, "reason": f"Kendall tau = {tau:.2f}; {why}"}


def picks_per_fraction(chosen: pd.DataFrame, fraction: float) -> str:
    """'seed 0: finetune(depth=1); seed 1: ...' for one fraction."""
    rows = chosen[chosen["fraction"] == fraction]
    return "; ".join(f"seed {seed}: {arm}" for seed, arm in zip(rows["seed"], rows["arm"])) or "no usable cells"
