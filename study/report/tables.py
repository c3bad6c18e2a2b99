"""Display versions of the analysis tables: numbers formatted, degenerate cells marked (no ranking †, collapsed at
0.5 ‡), wide layouts.

Input frames come from analysis, significance, curves and claims; output frames hold strings only.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from study.analysis.summaries import arms_in_rows

DAGGER = "†"  # a cell with no ranking: AUC near chance
DOUBLE_DAGGER = "‡"  # a cell collapsed at 0.5: one class for (almost) every test image at the argmax rule


def num(value, digits: int = 3) -> str:
    """A number with fixed decimals, '-' when missing."""
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def signed(value, digits: int = 3) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:+.{digits}f}"


def pval(value) -> str:
    """A p-value with three significant digits, '-' when no test was possible."""
    return "-" if value is None or pd.isna(value) else f"{value:.3g}"


def ci(low, high, digits: int = 3, sign: bool = False) -> str:
    form = signed if sign else num
    return "-" if pd.isna(low) else f"[{form(low, digits)}, {form(high, digits)}]"


def estimate(mean, low, high, sign: bool = False) -> str:
    """'0.712 [0.650, 0.774]', or the mean alone when there is no interval."""
    text = signed(mean) if sign else num(mean)
    return text if pd.isna(low) else f"{text} {ci(low, high, sign=sign)}"


def _estimates(frame: pd.DataFrame, column: str) -> list[str]:
    """Signed 'mean [low, high]' texts of a column with its ci_low and ci_high."""
    return [estimate(*v, sign=True) for v in zip(frame[column], frame["ci_low"], frame["ci_high"])]


def _two_level(frame: pd.DataFrame) -> dict:
    """The display columns of the two-level interval (seeds and test images) and of P(A > B)."""
    return {
        "seeds and test images 95% CI": [ci(lo, hi, sign=True) for lo, hi in zip(frame["ci2_low"], frame["ci2_high"])],
        "P(A > B)": frame["p_a_beats_b"].map(lambda v: num(v, 2)),
    }


def flag(no_ranking, total=None, collapsed=0) -> str:
    """'' for no degenerate cell, else ' †k' or ' †k/n' (k of n cells with no ranking) and ' ‡m' (m collapsed)."""
    text = ""
    if no_ranking:
        text += f" {DAGGER}{int(no_ranking)}" + ("" if total is None else f"/{int(total)}")
    if collapsed:
        text += f" {DOUBLE_DAGGER}{int(collapsed)}"
    return text


def marks(no_ranking, collapsed) -> str:
    """The marks of one cell: '†' for no ranking, '‡' for collapsed, both, or ''."""
    return (DAGGER if no_ranking else "") + (DOUBLE_DAGGER if collapsed else "")


def degenerate_kind(no_ranking, collapsed) -> str:
    """The kind of degenerate cell in words, with its marks."""
    return ", ".join(([f"no ranking {DAGGER}"] if no_ranking else [])
                     + ([f"collapsed at 0.5 {DOUBLE_DAGGER}"] if collapsed else []))


def _flags(frame: pd.DataFrame, suffix: str = "", totals: str | None = None) -> list[str]:
    """flag() of every row from its no_ranking and collapsed counts (columns with the suffix) and totals column."""
    total = frame[totals] if totals else [None] * len(frame)
    return [flag(n, t, c) for n, t, c in zip(frame[f"no_ranking{suffix}"], total, frame[f"collapsed{suffix}"])]


def fraction_label(summary: pd.DataFrame, fraction: float) -> str:
    """'0.1 (n=55)': the fraction with its training images when every arm used the same number."""
    counts = summary.loc[summary["fraction"] == fraction, "n_train"].unique()
    return f"{fraction:g} (n={counts[0]})" if len(counts) == 1 else f"{fraction:g}"


def metric_wide(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Arms as rows (in the summary's arm order), fractions as columns: 'mean [ci_low, ci_high] †k/n ‡m' per
    cell."""
    fractions = sorted(summary["fraction"].unique())
    by_key = {(row.arm, row.fraction): row for row in summary.itertuples(index=False)}
    rows = []
    for arm in arms_in_rows(summary):
        row = {"arm": arm}
        for fraction in fractions:
            cell = by_key.get((arm, fraction))
            values = [getattr(cell, f"{metric}_{s}") for s in ("mean", "ci_low", "ci_high")] if cell else []
            row[fraction_label(summary, fraction)] = "-" if cell is None else (
                estimate(*values) + flag(cell.no_ranking, cell.n_seeds, cell.collapsed))
        rows.append(row)
    return pd.DataFrame(rows)


def pairwise(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "fraction": frame["fraction"].map("{:g}".format),
        "a": frame["arm_a"] + _flags(frame, "_a"),
        "b": frame["arm_b"] + _flags(frame, "_b"),
        "pairs": frame["n_pairs"].astype(str),
        "mean a - b [95% CI]": _estimates(frame, "mean_diff"), **_two_level(frame),
        "t-test p": frame["t_p"].map(pval), "t p (Holm)": frame["t_p_holm"].map(pval),
        "Wilcoxon p": frame["w_p"].map(pval), "W p (Holm)": frame["w_p_holm"].map(pval),
    })


def friedman(tests: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "fraction": tests["fraction"].map("{:g}".format), "arms": tests["n_arms"].astype(str),
        "seeds": tests["n_seeds"].astype(str), "chi-square": tests["chi2"].map(num), "p": tests["p"].map(pval),
        "Nemenyi CD": tests["cd"].map(num), "note": tests["note"],
    })


def ranks_wide(ranks: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Arms as rows (those of arms that have ranks, in that order), fractions as columns: mean rank (1 = best) with
    degenerate marks."""
    rows = []
    for arm in [arm for arm in arms if arm in set(ranks["arm"])]:
        row = {"arm": arm}
        for item in ranks[ranks["arm"] == arm].itertuples(index=False):
            row[f"{item.fraction:g}"] = num(item.mean_rank, 2) + flag(item.no_ranking, collapsed=item.collapsed)
        rows.append(row)
    return pd.DataFrame(rows).fillna("-")


def mcnemar(frame: pd.DataFrame) -> pd.DataFrame:
    def cell(arm, seed, no_ranking, collapsed) -> str:
        mark = marks(no_ranking, collapsed)
        return "-" if pd.isna(arm) else f"{arm} s{int(seed)}" + (f" {mark}" if mark else "")

    def cells(side: str) -> list[str]:
        return [cell(*v) for v in zip(frame[f"arm_{side}"], frame[f"seed_{side}"], frame[f"no_ranking_{side}"],
                                      frame[f"collapsed_{side}"])]

    return pd.DataFrame({
        "a": frame["a"], "b": frame["b"], "fraction": frame["fraction"].map("{:g}".format),
        "best cell a": cells("a"), "best cell b": cells("b"),
        "images": frame["n_images"].map(lambda v: "-" if pd.isna(v) else str(int(v))),
        "only a right": frame["only_a"].map(lambda v: "-" if pd.isna(v) else str(int(v))),
        "only b right": frame["only_b"].map(lambda v: "-" if pd.isna(v) else str(int(v))),
        "acc a": frame["accuracy_a"].map(num), "acc b": frame["accuracy_b"].map(num),
        "p (exact)": frame["p"].map(pval), "p (Holm)": frame["p_holm"].map(pval),
        "AUC a": frame["auc_a"].map(num), "AUC b": frame["auc_b"].map(num),
        "DeLong p (Holm)": frame["delong_p_holm"].map(pval), "note": frame["note"],
    })


def curves(frame: pd.DataFrame, answered: dict[str, str]) -> pd.DataFrame:
    """The fits per arm, their size for the target, and the Answer's size (answered: arm -> its words) beside it."""
    table = pd.DataFrame({
        "arm": frame["arm"] + _flags(frame), "sizes": frame["n_sizes"].astype(str),
        "a (asymptote)": frame["a"].map(num), "b": frame["b"].map(lambda v: num(v, 3)), "c": frame["c"].map(num),
        "RMSE": frame["rmse"].map(lambda v: num(v, 4)),
        "target": frame["target"].map(lambda v: "-" if pd.isna(v) else f"{v:g}"),
        "n needed (fit)": frame["n_needed"].map(lambda v: "not reached" if pd.isna(v) else str(int(v))),
        "fit note": frame["note"],
    })
    if answered:
        table["in the Answer"] = frame["arm"].map(answered).fillna("-")
    return table


def topk(summary: pd.DataFrame) -> pd.DataFrame:
    """Top-1 and (with 3+ classes) top-2 accuracy per arm and fraction, mean [95% CI] over seeds."""
    frame = pd.DataFrame({
        "arm": summary["arm"] + _flags(summary, totals="n_seeds"),
        "fraction": summary["fraction"].map("{:g}".format), "n_train": summary["n_train"].astype(str),
        "top-1 accuracy": [estimate(*v) for v in
                           zip(summary["accuracy_mean"], summary["accuracy_ci_low"], summary["accuracy_ci_high"])],
    })
    if summary["top2_accuracy_mean"].notna().any():
        frame["top-2 accuracy"] = [estimate(*v) for v in zip(
            summary["top2_accuracy_mean"], summary["top2_accuracy_ci_low"], summary["top2_accuracy_ci_high"])]
    return frame


RATE_LABELS = {"sensitivity": "sensitivity", "specificity": "specificity", "ppv": "PPV", "npv": "NPV"}


def per_class(frame: pd.DataFrame) -> pd.DataFrame:
    """Per fraction, compared arm and class: the seeds (with the arm's degenerate cells marked), the four rates at the
    operating point, mean [95% CI] over seeds, and the counts summed over seeds."""
    return pd.DataFrame({
        "fraction": frame["fraction"].map("{:g}".format),
        "arm": [f"{arm} ({role})" for arm, role in zip(frame["arm"], frame["role"])],
        "class": frame["class_name"],
        "seeds": [str(seeds) + mark for seeds, mark in zip(frame["seeds"], _flags(frame))],
        **{f"{label} [95% CI]": [estimate(*v) for v in zip(
            frame[f"{rate}_mean"], frame[f"{rate}_ci_low"], frame[f"{rate}_ci_high"])]
           for rate, label in RATE_LABELS.items()},
        "TP / FN / FP / TN (all seeds)": [f"{tp} / {fn} / {fp} / {tn}" for tp, fn, fp, tn in
                                          zip(frame["tp"], frame["fn"], frame["fp"], frame["tn"])],
    })


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims table: each claim's words (as written) beside the statement tested, its verdict and its reason."""
    return pd.DataFrame({
        "claim": frame["claim"], "as written": frame["text"].replace("", "-"), "tested": frame["statement"],
        "verdict": frame["verdict"].str.upper(),
        "effect [95% CI] (seeds)": [
            "-" if not n else f"{estimate(m, lo, hi, sign=True)} ({n})"
            for m, lo, hi, n in zip(frame["effect"], frame["ci_low"], frame["ci_high"], frame["effect_seeds"])],
        **_two_level(frame),
        "p": frame["p"].map(pval), "alpha": frame["alpha"].map("{:g}".format), "why": frame["reason"],
    })


def claim_looks(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "claim": frame["claim"], "look": frame["look"], "seeds": frame["seeds"],
        "effect": frame["effect"].map(signed), "p": frame["p"].map(pval),
        "nominal level": frame["nominal_level"].map(pval),
        "predictive power": frame["predictive_power"].map(lambda value: "-" if pd.isna(value) else f"{value:.0%}"),
        "verdict at the look": [verdict.upper() if decided else "undecidable (futility)" if futile else "continue"
                                for verdict, decided, futile in zip(frame["verdict"], frame["decided_here"],
                                                                    frame["futile"])],
    })


def claim_details(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "claim": frame["claim"], "fraction": frame["fraction"].map("{:g}".format),
        "a": frame["arm_a"].fillna("-"), "b": frame["arm_b"].fillna("-"),
        "pairs": [f"{n}" + (f" ({d} dropped as degenerate)" if d else "")
                  for n, d in zip(frame["n_pairs"], frame["dropped_degenerate"])],
        "effect [95% CI]": _estimates(frame, "effect"),
        "t p": frame["t_p"].map(pval), "t p (Holm)": frame["t_p_holm"].map(pval),
        "W p (Holm)": [pval(p) + ("" if decides or pd.isna(p) else " (cannot decide)") for p, decides in
                       zip(frame["w_p_holm"], frame["wilcoxon_decides"])],
        "verdict": frame["verdict"], "why": frame["reason"],
    })


def tuning(frame: pd.DataFrame) -> pd.DataFrame:
    """Per tuned arm: the chosen values, the best validation score, and the trials spent by outcome."""
    def values(text: str) -> str:
        return ", ".join(f"{name} {value:.3g}" for name, value in sorted(json.loads(text).items()))

    return pd.DataFrame({
        "arm": frame["arm"], "tuned at fraction": frame["fraction"].map("{:g}".format), "engine": frame["engine"],
        "chosen values": frame["values"].map(values),
        "best validation": [f"{metric} {num(value)}" for metric, value in zip(frame["metric"], frame["best_value"])],
        "trials (complete/pruned/failed)": [f"{c + p + f} of {t} ({c}/{p}/{f})" for c, p, f, t in
                                            zip(frame["complete"], frame["pruned"], frame["failed"], frame["trials"])],
        "trial seconds": frame["trial_seconds"].map(lambda v: f"{v:.0f}"),
        "cells using them": frame["cells"].astype(str),
    })


def cells_list(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Selected columns of cell rows, numbers with three decimals, errors cut to their first line."""
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column] if column in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        out[column] = [_cell_text(column, value) for value in values]
    return out.reset_index(drop=True)


def _cell_text(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "error":
        line = str(value).strip().splitlines()[0] if str(value).strip() else "(no message)"
        return line if len(line) <= 200 else line[:197] + "..."
    if column == "fraction":
        return f"{float(value):g}"
    if isinstance(value, float):
        return num(value)
    return str(value)
