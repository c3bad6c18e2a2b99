"""The report's answer first: per fraction the arm validation recommends and whether it beats the runner-up, per
arm the training size a target needs, the claims in one sentence each, and the warnings that change how to read
them. Pure pandas over the analysis tables (summary, pairwise, curves, claims); nothing here trains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from study.analysis.curves import fit_curve, size_needed
from study.analysis.stats import holm
from study.analysis.summaries import arm_order, representative_arm
from study.core.vocabulary import higher_is_better
from study.report.tables import estimate, pval, signed

RECOMMENDATION_COLUMNS = ["fraction", "n_train", "arm", "mean", "ci_low", "ci_high", "runner_up", "diff", "p",
                          "verdict"]
SIZE_COLUMNS = ["arm", "target", "n_needed", "how", "ci_low", "ci_high", "interval_note", "n_largest"]
FAR = 10  # interval bounds beyond this many times the largest measured size are shown as such
SIZE_REPLICATES = 200  # bootstrap replicates over seeds of a fitted training size
SIZE_SEED = 0
MIN_SEEDS = 3  # fewer seeds than this: warned about, and no bootstrap interval of a training size
SHARE_TOLERANCE = 0.25  # a realised training share further than this (relative) from the asked fraction is warned


# ------------------------------------------------------------------------------------------ recommendation
def recommendations(done: pd.DataFrame, summary: pd.DataFrame, pairwise: pd.DataFrame, metric: str,
                    alpha: float) -> pd.DataFrame:
    """Per fraction: the arm with the best mean validation score over all arms, its test metric with its interval,
    and the paired t-test against the next arm by validation: one comparison per fraction, chosen before any test
    number is read, Holm-adjusted over the fractions."""
    rows = []
    arms = arm_order(done)
    for fraction in sorted(done["fraction"].unique()):
        best = representative_arm(done, arms, fraction)
        assert best is not None  # the fraction is one of done's, so some arm has cells there
        runner = representative_arm(done, [arm for arm in arms if arm != best], fraction)
        point = summary[(summary["arm"] == best) & (summary["fraction"] == fraction)].iloc[0]
        diff, p = _paired_test(pairwise, fraction, best, runner)
        rows.append({
            "fraction": float(fraction), "n_train": int(point["n_train"]), "arm": best,
            "mean": point[f"{metric}_mean"], "ci_low": point[f"{metric}_ci_low"],
            "ci_high": point[f"{metric}_ci_high"], "runner_up": runner, "diff": diff, "p": p,
        })
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["p"] = adjusted
        row["verdict"] = _against(row["runner_up"], row["diff"], adjusted, alpha, higher_is_better(metric))
    return pd.DataFrame(rows, columns=RECOMMENDATION_COLUMNS)


def _paired_test(pairwise: pd.DataFrame, fraction: float, arm: str, other: str | None) -> tuple[float, float]:
    """The pairwise row of arm and other at fraction: mean of arm - other and its paired t-test p (unadjusted)."""
    if other is None:
        return math.nan, math.nan
    at = pairwise[pairwise["fraction"] == fraction]
    forward = at[(at["arm_a"] == arm) & (at["arm_b"] == other)]
    backward = at[(at["arm_a"] == other) & (at["arm_b"] == arm)]
    if len(forward):
        return float(forward["mean_diff"].iloc[0]), float(forward["t_p"].iloc[0])
    if len(backward):
        return -float(backward["mean_diff"].iloc[0]), float(backward["t_p"].iloc[0])
    return math.nan, math.nan


def _against(runner: str | None, diff: float, p: float, alpha: float, higher: bool) -> str:
    """'beats X (p=...)', 'behind X on test (p=...)' or 'not distinguishable from X (...)'."""
    if runner is None:
        return "the only arm"
    if math.isnan(p):
        return f"not distinguishable from {runner} (no paired test possible)"
    if p < alpha:
        ahead = diff > 0 if higher else diff < 0
        return f"beats {runner} (p={pval(p)})" if ahead else f"behind {runner} on test (p={pval(p)})"
    return f"not distinguishable from {runner} (p={pval(p)})"


def recommendation_display(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return pd.DataFrame({
        "fraction": frame["fraction"].map("{:g}".format), "n_train": frame["n_train"].astype(str),
        "recommended arm (by validation)": frame["arm"],
        f"test {metric} [95% CI]": [estimate(*v) for v in zip(frame["mean"], frame["ci_low"], frame["ci_high"])],
        "against the runner-up": frame["verdict"],
        "difference": frame["diff"].map(signed),
    })


# ----------------------------------------------------------------------------------------- training size
def sizes_needed(done: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame, metric: str,
                 target: float | None) -> pd.DataFrame:
    """Per arm, the training size that reaches target: the smallest measured size whose mean meets it, else the
    fitted curve's estimate (curves) with a bootstrap interval over seeds. Empty without a target."""
    if target is None:
        return pd.DataFrame(columns=SIZE_COLUMNS)
    higher = higher_is_better(metric)
    fits = curves.set_index("arm")
    rows = []
    for arm in arm_order(done):
        points = summary[summary["arm"] == arm].sort_values("n_train")
        means = points[f"{metric}_mean"]
        met = points[(means >= target) if higher else (means <= target)]
        if len(met):
            rows.append({"arm": arm, "target": target, "n_needed": float(met["n_train"].iloc[0]), "how": "measured",
                         "ci_low": math.nan, "ci_high": math.nan, "interval_note": "",
                         "n_largest": points["n_train"].max()})
            continue
        fit = fits.loc[arm]
        low, high, note = size_interval(done[done["arm"] == arm], metric, target) if not math.isnan(
            fit["n_needed"]) else (math.nan, math.nan, "")
        rows.append({"arm": arm, "target": target, "n_needed": fit["n_needed"], "how": fit["note"],
                     "ci_low": low, "ci_high": high, "interval_note": note, "n_largest": points["n_train"].max()})
    return pd.DataFrame(rows, columns=SIZE_COLUMNS)


def size_interval(cells: pd.DataFrame, metric: str, target: float, replicates: int = SIZE_REPLICATES,
                  seed: int = SIZE_SEED) -> tuple[float, float, str]:
    """95% percentile interval of the fitted training size from resampling one arm's seeds with replacement
    (every fraction of a drawn seed comes along); a replicate whose curve never reaches the target counts as
    infinite. NaN and the reason when there are too few seeds."""
    seeds = np.array(sorted(cells["seed"].unique()))
    if len(seeds) < MIN_SEEDS:
        return math.nan, math.nan, f"no interval: {len(seeds)} seed(s), the bootstrap needs {MIN_SEEDS} or more"
    by_seed = {s: group for s, group in cells.groupby("seed")}
    rng = np.random.default_rng(seed)
    needed = [_refit(pd.concat([by_seed[s] for s in rng.choice(seeds, len(seeds))]), metric, target)
              for _ in range(replicates)]
    low, high = np.percentile(needed, [2.5, 97.5], method="inverted_cdf")  # no interpolation: may be infinite
    reached = np.isfinite(needed).mean()
    return float(low), float(high), f"bootstrap over seeds, {replicates} replicates, {reached:.0%} reach the target"


def _refit(cells: pd.DataFrame, metric: str, target: float) -> float:
    """The fitted training size of a resample of cells; infinite where its curve does not reach target."""
    points = cells.groupby("fraction").agg(n=("n_train", "mean"), mean=(metric, "mean"), sd=(metric, "std"),
                                           k=(metric, "count"))
    fit = fit_curve(points["n"].round(), points["mean"], points["sd"] / np.sqrt(points["k"]))
    needed, _ = size_needed(fit, target, points["n"])
    return math.inf if math.isnan(needed) else float(np.ceil(needed))  # a float: sizes beyond any int64 stay numbers


def size_display(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return pd.DataFrame({
        "arm": frame["arm"],
        f"training images for {metric} {frame['target'].iloc[0]:g}" if len(frame) else "training images":
            [_size_text(row) for row in frame.itertuples(index=False)],
    })


def size_texts(frame: pd.DataFrame) -> dict[str, str]:
    """arm -> the Answer's training size for the target, in words."""
    return {row.arm: _size_text(row) for row in frame.itertuples(index=False)}


def _size_text(row) -> str:
    if row.how == "measured":
        return f"reached at n = {int(row.n_needed)} (measured)"
    if math.isnan(row.n_needed):
        return row.how
    interval = (f" [95% CI {_count(row.ci_low, row.n_largest)} to {_count(row.ci_high, row.n_largest)}; "
                f"{row.interval_note}]"
                if not math.isnan(row.ci_low) else f" ({row.interval_note})" if row.interval_note else "")
    how = (f"extrapolated from the fitted curve{row.how.removeprefix('extrapolated')}"
           if row.how.startswith("extrapolated") else f"fitted curve, {row.how}")
    return f"about n = {int(row.n_needed)} ({how}){interval}"


def _count(value: float, largest: float) -> str:
    """A bound of the interval: the count, 'beyond FAR x the largest size measured', or 'not reached'."""
    if math.isinf(value):
        return "not reached"
    return f"beyond {FAR} x the largest size measured" if value > FAR * largest else str(int(value))


# --------------------------------------------------------------------------------------------------- claims
def claim_sentences(claims: pd.DataFrame) -> list[str]:
    """One plain sentence per claim: its own words (its id when it has none) heading its verdict, with the statement
    that was tested, the effect with its interval and p."""
    return [_claim_sentence(row) for row in claims.itertuples(index=False)]


def claim_lines(claims: pd.DataFrame) -> list[str]:
    """One short line per claim for a terminal: its verdict, its id and own words, the effect and p."""
    return [f"{row.verdict.upper()}: {_heading(row)} ({_effect(row)})" for row in claims.itertuples(index=False)]


def _claim_sentence(row) -> str:
    return f"{_heading(row)}: {row.verdict.upper()}, because {row.reason}. Tested: {row.statement} ({_effect(row)})."


def _heading(row) -> str:
    return f"{row.text} ({row.claim})" if row.text else row.claim


def _effect(row) -> str:
    if pd.isna(row.effect):
        return "no effect measured"
    return (f"effect {estimate(row.effect, row.ci_low, row.ci_high, sign=True)} over {int(row.effect_seeds)} "
            f"seed(s), p {pval(row.p)}")


def same_pair_sentences(recommended: pd.DataFrame, details: pd.DataFrame) -> list[str]:
    """Where the runner-up test and a claim compare the same two arms at a fraction, one sentence on how the two
    tests differ, so that their answers are not read as two answers to one question."""
    pairs = {(row.fraction, frozenset((row.arm, row.runner_up))) for row in recommended.itertuples(index=False)
             if isinstance(row.runner_up, str)}
    shared: dict[str, list[str]] = {}
    for row in details.itertuples(index=False):
        if isinstance(row.arm_a, str) and isinstance(row.arm_b, str) and (
                row.fraction, frozenset((row.arm_a, row.arm_b))) in pairs:
            shared.setdefault(row.claim, []).append(f"{row.fraction:g}")
    return [f"The runner-up test and claim {claim} compare the same arms at fraction(s) {', '.join(fractions)}: "
            "the runner-up test asks, at each fraction alone, whether the arm validation picks differs from the next "
            "one on test (Holm over the fractions), while the claim tests one direction on the per-seed advantage "
            "averaged over all of its fractions; so one can decide where the other cannot."
            for claim, fractions in shared.items()]


# ------------------------------------------------------------------------------------------------- warnings
def reading_warnings(done: pd.DataFrame, summary: pd.DataFrame, split: pd.DataFrame | None, seeded: bool,
             grouped: bool) -> list[str]:
    """The warnings that change how to read the answer (none: an empty list)."""
    found = [_untested_warning(done), _degenerate_warning(done), _group_warning(seeded, grouped),
             _seed_warning(summary), _share_warning(done, split)]
    return [f"Warning: {text}" for text in found if text]


def _untested_warning(done: pd.DataFrame) -> str:
    """Cells whose test split lacks a class (study.analysis.per_class.unmeasured): their macro metrics are empty."""
    lacking = done["untested_classes"][done["untested_classes"].ne("")] if "untested_classes" in done else []
    if not len(lacking):
        return ""
    return (f"{len(lacking)} of {len(done)} cells were tested without any image of some class ("
            f"{'; '.join(sorted(set(lacking)))}): their AUC, balanced accuracy and F1, averages over every class, "
            "are not defined, so they are left empty and out of every mean (not averaged over the classes present); "
            "tables/cells.csv names each cell's untested_classes. Give every class validation and test images and "
            "run again.")


def _degenerate_warning(done: pd.DataFrame) -> str:
    count = int(done["degenerate"].sum())
    if not count:
        return ""
    return (f"{count} of {len(done)} cells are degenerate ({int(done['no_ranking'].sum())} with no ranking, "
            f"{int(done['collapsed'].sum())} collapsed at 0.5); see Degenerate and failed cells.")


def _group_warning(seeded: bool, grouped: bool) -> str:
    if not seeded or grouped:
        return ""
    return ("the split is seeded (the source has no official split) and has no group column: images of one "
            "patient may sit on both sides, which flatters every test metric.")


def _seed_warning(summary: pd.DataFrame) -> str:
    few = summary[summary["n_seeds"] < MIN_SEEDS]
    if few.empty:
        return ""
    return (f"{len(few)} of {len(summary)} arm-fraction results rest on fewer than {MIN_SEEDS} seeds (fewest: "
            f"{int(few['n_seeds'].min())}); their intervals are wide and no claim is decided on them.")


def _share_warning(done: pd.DataFrame, split: pd.DataFrame | None) -> str:
    shares = realised_shares(done, split)
    far = shares[(shares["share"] - shares["fraction"]).abs() > SHARE_TOLERANCE * shares["fraction"]]
    if far.empty:
        return ""
    listed = ", ".join(f"{row.fraction:g} gave {row.share:.3g}" for row in far.itertuples(index=False))
    return (f"the realised training shares differ from the asked fractions by more than "
            f"{SHARE_TOLERANCE:.0%}: {listed} (n_train over the stored training split).")


def realised_shares(done: pd.DataFrame, split: pd.DataFrame | None) -> pd.DataFrame:
    """Per fraction, the mean over cells of n_train / the size of the cell's training split (its seed's block,
    else the fixed one). Empty without a stored split."""
    if split is None or split.empty:
        return pd.DataFrame(columns=["fraction", "share"])
    train = split[split["split"] == "train"]
    fixed = int(train["seed"].isna().sum())
    per_seed = train.dropna(subset=["seed"]).groupby("seed").size()
    sizes = done["seed"].map(lambda s: per_seed.get(s, fixed)).astype(float)
    share = (done["n_train"] / sizes.where(sizes > 0)).groupby(done["fraction"]).mean()
    return pd.DataFrame({"fraction": share.index.astype(float), "share": share.to_numpy()}).dropna()

