"""The protocol's claims tested on flagged done cells (see analysis.flagged): a verdict per claim and per fraction.

RULE (below) is the rule in words, its numbers taken from the code; the report prints it and the documentation's
report page (docs/guide/report.md) quotes it (a test checks they agree).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.analysis.resampling import (
    Predictions,
    TwoLevel,
    matched_predictions,
    two_level_bootstrap,
)
from study.analysis.significance import paired_values
from study.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    Paired,
    add_holm,
    paired_comparison,
    wilcoxon_seeds,
    wilcoxon_smallest_p,
)
from study.analysis.summaries import excluded_for, representative_arm
from study.analysis.trend import chosen_positions, picks_per_fraction, trend_verdict
from study.core.vocabulary import Verdict, higher_is_better
from study.protocol.schema import ClaimSpec, ReportSpec

MIN_PAIRS = 3  # fewer seed pairs than this never decide a claim

CLAIM_COLUMNS = [
    "claim", "text", "statement", "metric", "verdict", "reason", "effect", "ci_low", "ci_high", "effect_seeds",
    "effect_sd", "p", "ci2_low", "ci2_high", "p_a_beats_b",
    "alpha",
    "n_fractions", "n_supported", "n_contradicted",
]

ALPHA = ReportSpec.model_fields["alpha"].default  # the report's default level, the one RULE's example is at
RULE = (
    "Each side of a claim is an arm, or a strategy or list of arms represented at each fraction by its arm with the "
    "best mean validation score over seeds (the stored monitor value, never a test metric). At each fraction the two "
    "representatives are paired by seed, and a pair is dropped when a cell is degenerate for the claim's metric (no "
    "ranking; on argmax metrics also collapsed at 0.5) unless the claim or the report keeps them. The advantage is "
    "a - b (b - a where lower is better). The verdict comes from one test on all of the claim's data: per seed, the "
    "advantage averaged over the claim's fractions (seeds paired at every fraction), and the paired t-test of that "
    "average plus the margin (0 for better) at alpha, with no correction because it is one test. Supported: the "
    f"t-test is significant, the {CONFIDENCE:.0%} percentile bootstrap interval of the mean advantage lies above "
    "-margin, and the Wilcoxon signed-rank test agrees wherever it can reach alpha (its smallest two-sided p with n "
    f"seeds is 2 / 2^n, so it decides from {wilcoxon_seeds(ALPHA)} seeds at alpha {ALPHA:g}). Contradicted: the "
    "mirror case (significant, interval below -margin). Otherwise inconclusive, including fewer than "
    f"{MIN_PAIRS} seeds. Fraction by fraction, the same test with Holm's correction over the claim's fractions says "
    "where the claim holds on its own; those rows never change the verdict. A claim about scarce data names its own "
    "fractions. A trend claim is tested on its own: for each seed and fraction validation picks one arm of the "
    "ordered list a; the effect is Kendall's tau between fraction and the picked arm's position, decided by its "
    "two-sided p and a 95% bootstrap interval over seeds (supported: tau > 0, p < alpha, interval above 0)."
)
DETAIL_COLUMNS = [
    "claim", "fraction", "arm_a", "arm_b", "n_pairs", "dropped_degenerate", "effect", "ci_low", "ci_high", "t_p",
    "t_p_holm", "w_p", "w_p_holm", "wilcoxon_decides", "verdict", "reason",
]


def evaluate_claims(
    cells: pd.DataFrame, claims: list[ClaimSpec], report: ReportSpec, fractions: list[float],
    resamples: int = BOOTSTRAP_RESAMPLES, predictions: Predictions | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per claim and one detail row per claim and fraction; with the cells' stored predictions,
    the two-level interval (seeds and test images) and P(A > B) too."""
    summaries, details = [], []
    for claim in claims:
        summary, detail = evaluate_claim(cells, claim, report, fractions, resamples, predictions)
        summaries.append(summary)
        details += detail
    return pd.DataFrame(summaries, columns=CLAIM_COLUMNS), pd.DataFrame(details, columns=DETAIL_COLUMNS)


def evaluate_claim(
    cells: pd.DataFrame, claim: ClaimSpec, report: ReportSpec, fractions: list[float],
    resamples: int = BOOTSTRAP_RESAMPLES, predictions: Predictions | None = None,
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
    add_holm(tested, ("t_p", "w_p"))
    for row in rows:
        reachable = len(tested) * wilcoxon_smallest_p(row["n_pairs"]) <= alpha
        row["wilcoxon_decides"] = bool(row["n_pairs"] >= MIN_PAIRS and reachable)
        row["verdict"], row["reason"] = _fraction_verdict(row, claim.margin, alpha)
    per_seed = pooled_advantage(advantages)
    verdict, reason, primary = pooled_decision(per_seed.to_numpy(), claim.margin, alpha, resamples)
    both = two_level_bootstrap(_paired_predictions(pool, rows, list(per_seed.index), predictions), metric, sign) \
        if predictions is not None else TwoLevel(math.nan, math.nan, math.nan)
    summary = {
        "claim": claim.id, "text": claim.text, "statement": statement(claim, metric, wanted), "metric": metric,
        "verdict": verdict,
        "reason": reason + _where_it_holds(rows) + _left_out(cells, pool, rows, set(per_seed.index)),
        "effect": primary.mean_diff, "ci_low": primary.ci_low,
        "ci_high": primary.ci_high, "effect_seeds": primary.n,
        "effect_sd": float(per_seed.std(ddof=1)) if primary.n > 1 else math.nan, "p": primary.t_p, "alpha": alpha,
        "ci2_low": both.ci_low, "ci2_high": both.ci_high, "p_a_beats_b": both.p_a_beats_b,
        "n_fractions": len(rows), "n_supported": sum(r["verdict"] == Verdict.SUPPORTED for r in rows),
        "n_contradicted": sum(r["verdict"] == Verdict.CONTRADICTED for r in rows),
    }
    return summary, rows


def _trend_claim(cells, pool, claim: ClaimSpec, fractions: list[float], alpha: float) -> tuple[dict, list[dict]]:
    """A trend claim: Kendall's tau between fraction and the position of the arm validation picks (see study.analysis.trend)."""
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
        "claim": claim.id, "text": claim.text, "statement": statement(claim, "validation score", fractions),
        "metric": "kendall_tau",
        "verdict": result["verdict"], "reason": result["reason"], "effect": result["effect"],
        "ci_low": result["ci_low"], "ci_high": result["ci_high"], "effect_seeds": result["seeds"], "effect_sd": math.nan,
        "ci2_low": math.nan, "ci2_high": math.nan, "p_a_beats_b": math.nan,
        "p": result["p"], "alpha": alpha, "n_fractions": len(fractions),
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
    assert arm_a is not None and arm_b is not None  # a side without an arm has its note
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
        return Verdict.INCONCLUSIVE, note
    if row["n_pairs"] < MIN_PAIRS:
        dropped = f" ({row['dropped_degenerate']} dropped as degenerate)" if row["dropped_degenerate"] else ""
        return Verdict.INCONCLUSIVE, f"{row['n_pairs']} seed pairs{dropped}; a verdict needs {MIN_PAIRS} or more"
    return decide(row["t_p_holm"], row["ci_low"], row["ci_high"], row["w_p_holm"], row["wilcoxon_decides"], margin,
                  alpha, "p_holm")


def decide(t_p: float, ci_low: float, ci_high: float, w_p: float, wilcoxon_decides: bool, margin: float,
           alpha: float, p_name: str = "p") -> tuple[str, str]:
    """Supported: the t-test is significant, the interval lies above -margin and the Wilcoxon test agrees where it
    can reach alpha; contradicted: the mirror case; else inconclusive. The verdict and its reason."""
    if math.isnan(t_p):
        return Verdict.INCONCLUSIVE, "the paired differences have no variance; no t-test possible"
    wilcoxon_agrees = not wilcoxon_decides or w_p < alpha
    bound = f"{-margin:g}" if margin else "0"
    significant = t_p < alpha
    if significant and ci_low > -margin and wilcoxon_agrees:
        return Verdict.SUPPORTED, f"t-test {p_name} = {t_p:.3g}, interval above {bound}"
    if significant and ci_high < -margin and wilcoxon_agrees:
        return Verdict.CONTRADICTED, f"t-test {p_name} = {t_p:.3g}, interval below {bound}"
    if not significant:
        return Verdict.INCONCLUSIVE, f"no significant difference (t-test {p_name} = {t_p:.3g})"
    if not wilcoxon_agrees:
        return Verdict.INCONCLUSIVE, f"the Wilcoxon test does not confirm ({p_name} = {w_p:.3g})"
    return Verdict.INCONCLUSIVE, f"t-test significant but the bootstrap interval includes {bound}"


def _paired_predictions(pool: pd.DataFrame, rows: list[dict], seeds: list, predictions: Predictions
                        ) -> dict[float, dict[int, pd.DataFrame]]:
    """fraction -> seed -> the test predictions of the claim's two cells there, matched by image id."""
    paired: dict[float, dict[int, pd.DataFrame]] = {}
    for row in rows:
        by_seed = matched_predictions(pool, row["fraction"], row["arm_a"], row["arm_b"], seeds, predictions) \
            if row["n_pairs"] else None
        if by_seed is None:
            return {}
        paired[row["fraction"]] = by_seed
    return paired


def pooled_advantage(advantages: list[pd.Series]) -> pd.Series:
    """Per seed, the advantage averaged over the claim's fractions (only seeds paired at every fraction)."""
    if not advantages or any(a.empty for a in advantages):
        return pd.Series(dtype=float)
    return pd.concat(advantages, axis=1).dropna().mean(axis=1)


def pooled_decision(per_seed: np.ndarray, margin: float, alpha: float,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[str, str, Paired]:
    """The claim's primary test, on all of its data at once: the per-seed advantages averaged over its fractions,
    one paired t-test of advantage + margin at alpha (no correction: it is one test), the bootstrap interval of the
    mean advantage beside it, and the Wilcoxon test where it can reach alpha (RULE)."""
    primary = paired_comparison(per_seed, np.zeros(len(per_seed)), shift=margin, resamples=resamples)
    if primary.n < MIN_PAIRS:
        return Verdict.INCONCLUSIVE, (f"{primary.n} seeds have pairs at every fraction of the claim; a verdict needs "
                              f"{MIN_PAIRS} or more"), primary
    reachable = wilcoxon_smallest_p(primary.n) <= alpha
    verdict, reason = decide(primary.t_p, primary.ci_low, primary.ci_high, primary.w_p, reachable, margin, alpha)
    if verdict == Verdict.CONTRADICTED:
        reason = ("b better" if not margin else f"a worse by more than {margin:g}") + ": " + reason
    return verdict, reason, primary


def _left_out(cells: pd.DataFrame, pool: pd.DataFrame, rows: list[dict], kept: set) -> str:
    """The seeds the primary test left out and why, as a clause: a cell of the compared arms excluded as degenerate
    (no ranking, or collapsed at the argmax rule), or not stored."""
    why: dict[int, list[str]] = {}
    for row in rows:
        arms = [arm for arm in (row["arm_a"], row["arm_b"]) if arm is not None]
        if len(arms) < 2 or arms[0] == arms[1]:
            continue
        at = cells[(cells["fraction"] == row["fraction"]) & cells["arm"].isin(arms)]
        for cell in at[~at.index.isin(pool.index)].itertuples():
            kind = "no ranking" if cell.no_ranking else "collapsed at the argmax rule"
            why.setdefault(int(cell.seed), []).append(f"{cell.arm} at {row['fraction']:g} ({kind})")
        for seed, stored in at.groupby("seed")["arm"]:
            why.setdefault(int(seed), []).extend(f"no {arm} cell at {row['fraction']:g}"
                                                 for arm in arms if arm not in set(stored))
    left = {seed: reasons for seed, reasons in why.items() if seed not in kept and reasons}
    if not left:
        return ""
    return "; left out: " + "; ".join(f"seed {seed}: {', '.join(reasons)}" for seed, reasons in sorted(left.items()))


def _where_it_holds(rows: list[dict]) -> str:
    """The fractions where the claim holds on its own (Holm over the claim's fractions), as a clause."""
    tested = [row for row in rows if row["n_pairs"] >= MIN_PAIRS]
    if len(rows) < 2 or not tested:
        return ""
    held = [f"{row['fraction']:g}" for row in rows if row["verdict"] == Verdict.SUPPORTED]
    against = [f"{row['fraction']:g}" for row in rows if row["verdict"] == Verdict.CONTRADICTED]
    where = f"; fraction by fraction (Holm): holds at {len(held)} of {len(rows)} fractions"
    where += f" ({', '.join(held)})" if held else ""
    return where + (f", reversed at {', '.join(against)}" if against else "")


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
