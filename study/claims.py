"""The protocol's claims tested on flagged done cells (see analysis.flagged): a verdict per claim and per fraction.

The rule (also in the README):
- Each side of a claim is an arm, or a strategy / list of arms represented at each fraction by its arm with the best
  mean validation score over seeds (the stored `monitor_value`, never a test metric).
- At each fraction the two representatives are paired by seed; a pair is dropped when either cell is degenerate
  for the claim's metric (analysis.excluded_for: no ranking, and for argmax-rule metrics also collapsed), unless
  the claim or report keeps them. The advantage is a - b (b - a for metrics where lower is better).
- The paired t-test of advantage + margin (margin 0 for `better`) is the deciding test, Holm-adjusted across the
  claim's fractions that have at least MIN_PAIRS pairs. The Wilcoxon test must agree too wherever it can reach the
  level at all: when fractions x 2 / 2**pairs <= alpha (with 3 seeds its smallest p is 0.25, so it cannot).
- A fraction supports the claim when the adjusted t-test p < alpha, the 95% bootstrap interval of the advantage lies
  above -margin and the Wilcoxon agrees where it can; it contradicts it in the mirror case (interval below -margin).
- The claim is contradicted when any fraction contradicts it, supported when every fraction supports it, and
  inconclusive otherwise (including fewer than MIN_PAIRS pairs, or no variance between seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.analysis import excluded_for, higher_is_better, representative_arm
from study.protocol import ClaimSpec, ReportSpec
from study.significance import paired_values
from study.stats import BOOTSTRAP_RESAMPLES, bootstrap_mean_ci, holm, paired_comparison, wilcoxon_smallest_p
from study.trend import chosen_positions, picks_per_fraction, trend_verdict

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
MIN_PAIRS = 3  # fewer seed pairs than this never decide a claim

CLAIM_COLUMNS = [
    "claim", "statement", "metric", "verdict", "reason", "effect", "ci_low", "ci_high", "effect_seeds", "p_holm",
    "alpha",
    "n_fractions", "n_supported", "n_contradicted",
]
DETAIL_COLUMNS = [
    "claim", "fraction", "arm_a", "arm_b", "n_pairs", "dropped_degenerate", "effect", "ci_low", "ci_high", "t_p",
    "t_p_holm", "w_p", "w_p_holm", "wilcoxon_decides", "verdict", "reason",
]


def evaluate_claims(
    cells: pd.DataFrame, claims: list[ClaimSpec], report: ReportSpec, fractions: list[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per claim and one detail row per claim and fraction."""
    summaries, details = [], []
    for claim in claims:
        summary, detail = evaluate_claim(cells, claim, report, fractions, resamples)
        summaries.append(summary)
        details += detail
    return pd.DataFrame(summaries, columns=CLAIM_COLUMNS), pd.DataFrame(details, columns=DETAIL_COLUMNS)


def evaluate_claim(
    cells: pd.DataFrame, claim: ClaimSpec, report: ReportSpec, fractions: list[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[dict, list[dict]]:
    """The verdict of one claim, with its per-fraction rows."""
    metric = claim.metric or report.metric
    alpha = claim.alpha or report.alpha
    exclude = report.exclude_degenerate if claim.exclude_degenerate is None else claim.exclude_degenerate
    pool = cells[~excluded_for(metric, cells)] if exclude else cells
    wanted = fractions if claim.fractions == "all" else claim.fractions
    if claim.kind == "trend":
        return _trend_claim(cells, pool, claim, [float(f) for f in wanted], alpha)
    sign = 1.0 if higher_is_better(metric) else -1.0
    rows, advantages = [], []
    for fraction in wanted:
        row, advantage = _fraction_row(cells, pool, claim, metric, sign, float(fraction), resamples)
        rows.append(row)
        advantages.append(advantage)
    tested = [row for row in rows if row["n_pairs"] >= MIN_PAIRS]
    for test in ("t", "w"):
        for row, adjusted in zip(tested, holm([row[f"{test}_p"] for row in tested])):
            row[f"{test}_p_holm"] = adjusted
    for row in rows:
        reachable = len(tested) * wilcoxon_smallest_p(row["n_pairs"]) <= alpha
        row["wilcoxon_decides"] = bool(row["n_pairs"] >= MIN_PAIRS and reachable)
        row["verdict"], row["reason"] = _fraction_verdict(row, claim.margin, alpha)
    effect, low, high, seeds = _pooled_effect(advantages, resamples)
    verdict, reason, p = _claim_verdict(rows, claim)
    summary = {
        "claim": claim.id, "statement": statement(claim, metric, wanted), "metric": metric, "verdict": verdict,
        "reason": reason, "effect": effect, "ci_low": low, "ci_high": high, "effect_seeds": seeds, "p_holm": p,
        "alpha": alpha,
        "n_fractions": len(rows), "n_supported": sum(r["verdict"] == SUPPORTED for r in rows),
        "n_contradicted": sum(r["verdict"] == CONTRADICTED for r in rows),
    }
    return summary, rows


def _trend_claim(cells, pool, claim: ClaimSpec, fractions: list[float], alpha: float) -> tuple[dict, list[dict]]:
    """A trend claim: Kendall's tau between fraction and the position of the arm validation picks (see study.trend)."""
    arms = claim.side("a")
    chosen = chosen_positions(pool, arms, fractions)
    result = trend_verdict(claim, chosen, alpha)
    rows = []
    for fraction in fractions:
        picks = chosen[chosen["fraction"] == fraction]
        listed = cells[cells["arm"].isin(arms) & (cells["fraction"] == fraction)]
        rows.append({
            "claim": claim.id, "fraction": fraction,
            "arm_a": picks["arm"].mode().iloc[0] if len(picks) else None, "arm_b": None,
            "n_pairs": len(picks), "dropped_degenerate": len(listed) - len(pool[pool.index.isin(listed.index)]),
            "effect": picks["position"].mean() if len(picks) else math.nan, "ci_low": math.nan, "ci_high": math.nan,
            "t_p": math.nan, "t_p_holm": math.nan, "w_p": math.nan, "w_p_holm": math.nan, "wilcoxon_decides": False,
            "verdict": "-", "reason": "validation picks " + picks_per_fraction(chosen, fraction),
        })
    summary = {
        "claim": claim.id, "statement": statement(claim, "validation score", fractions), "metric": "kendall_tau",
        "verdict": result["verdict"], "reason": result["reason"], "effect": result["effect"],
        "ci_low": result["ci_low"], "ci_high": result["ci_high"], "effect_seeds": result["seeds"],
        "p_holm": result["p"], "alpha": alpha, "n_fractions": len(fractions),
        "n_supported": 0, "n_contradicted": 0,
    }
    return summary, rows


def _fraction_row(cells, pool, claim: ClaimSpec, metric: str, sign: float, fraction: float, resamples: int):
    """One fraction of a claim: representatives, pairs, tests (Holm and verdict are added later)."""
    arm_a, arm_b = (representative_arm(pool, claim.side(side), fraction) for side in ("a", "b"))
    row = {"claim": claim.id, "fraction": fraction, "arm_a": arm_a, "arm_b": arm_b, "n_pairs": 0,
           "dropped_degenerate": 0, "t_p_holm": math.nan, "w_p_holm": math.nan}
    missing = " and ".join(side for side, arm in (("a", arm_a), ("b", arm_b)) if arm is None)
    note = f"no usable cells for {missing}" if missing else f"both sides are {arm_a}" if arm_a == arm_b else ""
    if note:
        return row | {"effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "t_p": math.nan, "w_p": math.nan,
                      "note": note}, pd.Series(dtype=float)
    every = paired_values(cells, metric, arm_a, arm_b, fraction)
    kept = paired_values(pool, metric, arm_a, arm_b, fraction)
    advantage = sign * (kept["a"] - kept["b"])
    result = paired_comparison(sign * kept["a"], sign * kept["b"], shift=claim.margin, resamples=resamples)
    return row | {
        "n_pairs": result.n, "dropped_degenerate": len(every) - len(kept), "effect": result.mean_diff,
        "ci_low": result.ci_low, "ci_high": result.ci_high, "t_p": result.t_p, "w_p": result.w_p, "note": "",
    }, pd.Series(advantage.to_numpy(), index=kept["seed"].to_numpy())


def _fraction_verdict(row: dict, margin: float, alpha: float) -> tuple[str, str]:
    note = row.pop("note")
    if note:
        return INCONCLUSIVE, note
    if row["n_pairs"] < MIN_PAIRS:
        dropped = f" ({row['dropped_degenerate']} dropped as degenerate)" if row["dropped_degenerate"] else ""
        return INCONCLUSIVE, f"{row['n_pairs']} seed pairs{dropped}; a verdict needs {MIN_PAIRS} or more"
    if math.isnan(row["t_p_holm"]):
        return INCONCLUSIVE, "the paired differences have no variance; no t-test possible"
    wilcoxon_agrees = not row["wilcoxon_decides"] or row["w_p_holm"] < alpha
    bound = f"{-margin:g}" if margin else "0"
    significant = row["t_p_holm"] < alpha
    if significant and row["ci_low"] > -margin and wilcoxon_agrees:
        return SUPPORTED, f"t-test p_holm = {row['t_p_holm']:.3g}, interval above {bound}"
    if significant and row["ci_high"] < -margin and wilcoxon_agrees:
        return CONTRADICTED, f"t-test p_holm = {row['t_p_holm']:.3g}, interval below {bound}"
    if not significant:
        return INCONCLUSIVE, f"no significant difference (t-test p_holm = {row['t_p_holm']:.3g})"
    if not wilcoxon_agrees:
        return INCONCLUSIVE, f"the Wilcoxon test does not confirm (p_holm = {row['w_p_holm']:.3g})"
    return INCONCLUSIVE, f"t-test significant but the bootstrap interval includes {bound}"


def _claim_verdict(rows: list[dict], claim: ClaimSpec) -> tuple[str, str, float]:
    """Contradicted if any fraction contradicts, supported if all support, else inconclusive; and the p behind it."""
    if not rows:
        return INCONCLUSIVE, "no fractions to test", math.nan
    by = {verdict: [r for r in rows if r["verdict"] == verdict] for verdict in (SUPPORTED, CONTRADICTED, INCONCLUSIVE)}
    at = lambda group: ", ".join(f"{r['fraction']:g}" for r in group)  # noqa: E731
    if by[CONTRADICTED]:
        against = "b better" if claim.kind == "better" else f"a worse by more than {claim.margin:g}"
        smallest = min(r["t_p_holm"] for r in by[CONTRADICTED])
        return CONTRADICTED, f"{against} at fraction(s) {at(by[CONTRADICTED])}", smallest
    p_values = [r["t_p_holm"] for r in rows if not math.isnan(r["t_p_holm"])]
    largest = max(p_values) if p_values else math.nan
    if len(by[SUPPORTED]) == len(rows):
        return SUPPORTED, f"supported at every fraction ({at(rows)})", largest
    first = by[INCONCLUSIVE][0]
    reason = (f"supported at {len(by[SUPPORTED])} of {len(rows)} fractions; "
              f"at {first['fraction']:g}: {first['reason']}")
    return INCONCLUSIVE, reason, largest


def _pooled_effect(advantages: list[pd.Series], resamples: int) -> tuple[float, float, float, int]:
    """The advantage averaged over the claim's fractions per seed (seeds paired at every fraction): its mean, bootstrap
    interval, and the number of such seeds."""
    if not advantages or any(a.empty for a in advantages):
        return math.nan, math.nan, math.nan, 0
    per_seed = pd.concat(advantages, axis=1).dropna().mean(axis=1)
    if per_seed.empty:
        return math.nan, math.nan, math.nan, 0
    low, high = bootstrap_mean_ci(per_seed.to_numpy(), resamples)
    return float(np.mean(per_seed)), low, high, len(per_seed)


def statement(claim: ClaimSpec, metric: str, fractions: list[float]) -> str:
    """The claim in words: 'a better than b on auc at fractions 0.05, 0.1'."""
    def side(which: str) -> str:
        names = claim.side(which)
        return names[0] if len(names) == 1 else "best of (" + ", ".join(names) + ")"

    at = ", ".join(f"{f:g}" for f in fractions)
    if claim.kind == "trend":
        return (f"the arm of ({', '.join(claim.side('a'))}) that validation picks moves later in that order as the "
                f"fraction grows (Kendall tau), at fractions {at}")
    relation = "better than" if claim.kind == "better" else f"not worse (margin {claim.margin:g}) than"
    return f"{side('a')} {relation} {side('b')} on {metric} at fractions {at}"
