"""The report's figures, drawn with matplotlib's object API (no pyplot state) and saved reproducibly as PNG and SVG.

Each function takes analysis tables and returns a matplotlib Figure; `encode` turns it into file bytes.
"""

from __future__ import annotations

import io
import math
import re

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from study.analysis.curves import inverse_power_law
from study.analysis.embedding import Embedding
from study.analysis.summaries import RANGES, UNBOUNDED, arms_in_rows
from study.report.tables import marks

DPI = 110


def encode(figure: Figure) -> tuple[bytes, bytes]:
    """PNG and SVG bytes of a figure, without dates or random ids, so a rebuild gives the same files."""
    FigureCanvasAgg(figure)
    png, svg = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "study", "svg.fonttype": "path"}):
        figure.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), _numbered_clip_paths(svg.getvalue())


def _numbered_clip_paths(svg: bytes) -> bytes:
    """The SVG with its clip-path ids numbered in order of definition: matplotlib derives some of them from object
    addresses, which differ from one process to the next."""
    ids = dict.fromkeys(re.findall(rb'<clipPath id="([^"]+)"', svg))
    names = {old: b"clip%d" % number for number, old in enumerate(ids)}
    return re.sub(rb'(?<=<clipPath id=")[^"]+|(?<=url\(#)[^)]+',
                  lambda match: names.get(match.group(0), match.group(0)), svg)


def text_colour(rgba) -> str:
    """Black or white, whichever reads better on a cell of this colour (WCAG relative luminance above or below the
    level where both contrast ratios are equal)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.179 else "white"


def _palette(arms: list[str]) -> dict[str, tuple]:
    return dict(zip(arms, sns.color_palette("tab10" if len(arms) <= 10 else "husl", n_colors=len(arms))))


def _grid(count: int, width: float, height: float, columns: int = 3) -> tuple[Figure, list]:
    columns = min(columns, max(count, 1))
    rows = math.ceil(max(count, 1) / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(max(count, 1))]
    return figure, axes


# ------------------------------------------------------------------------------------------ learning curve
def learning_curves(summary: pd.DataFrame, curves: pd.DataFrame, metric: str, target: float | None,
                    highlight: dict[float, str] | None = None) -> Figure:
    """Metric against training images (log axis): per arm the mean over seeds with its 95% band, and the fitted
    inverse power law as a dashed line; the target as a dotted line; a ring on the arm of highlight (fraction ->
    arm) at each fraction."""
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    mean, low, high = (f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high"))
    data = summary.dropna(subset=[mean])
    arms = arms_in_rows(data)
    palette = _palette(arms)
    fits = curves.set_index("arm") if len(curves) else pd.DataFrame()
    span_high = data["n_train"].max()
    for arm in arms:
        points = data[data["arm"] == arm].sort_values("n_train")
        flagged = marks(points["no_ranking"].sum(), points["collapsed"].sum())
        axes.plot(points["n_train"], points[mean], marker="o", color=palette[arm], label=f"{arm}{flagged}")
        axes.fill_between(points["n_train"], points[low], points[high], color=palette[arm], alpha=0.15, linewidth=0)
        if arm in fits.index and not math.isnan(fits.at[arm, "a"]):
            fit = fits.loc[arm]
            needed = fit["n_needed"] if not math.isnan(fit["n_needed"]) else span_high
            grid = np.geomspace(points["n_train"].min(), max(span_high, min(needed, 10 * span_high)), 200)
            axes.plot(grid, inverse_power_law(grid, fit["a"], fit["b"], fit["c"]), linestyle="--", color=palette[arm],
                      linewidth=1)
    _rings(axes, data, mean, highlight or {})
    if target is not None:
        axes.axhline(target, color="0.3", linestyle=":", linewidth=1, label=f"target {target:g}")
    _clip_axis(axes, metric)
    axes.set_xscale("log")
    ticks = sorted(data["n_train"].unique())
    axes.set_xticks(ticks, [str(int(t)) for t in ticks])
    axes.minorticks_off()
    axes.grid(True, alpha=0.3)
    axes.set_xlabel("training images (log scale)")
    axes.set_ylabel(metric)
    drawn = len(fits) and fits["a"].notna().any()
    axes.set_title(f"{metric} vs training-set size: mean and 95% CI over seeds; "
                   + ("dashed: fitted a - b n^-c" if drawn else "no curve fitted (see the learning-curve fits)"))
    if axes.get_legend_handles_labels()[0]:  # nothing drawn where the metric is NaN in every cell
        axes.legend(fontsize="small", loc="best")
    return figure


def _clip_axis(axes, metric: str) -> None:
    """Keep the y axis inside the metric's range (an AUC axis never runs past 1)."""
    low, high = RANGES.get(metric, UNBOUNDED)
    bottom, top = axes.get_ylim()
    axes.set_ylim(max(low, bottom), min(high, top))


def _rings(axes, data: pd.DataFrame, mean: str, highlight: dict[float, str]) -> None:
    """A black ring around the mean of each fraction's highlighted arm, with one legend entry."""
    chosen = data[[highlight.get(f) == arm for f, arm in zip(data["fraction"], data["arm"])]]
    if len(chosen):
        axes.scatter(chosen["n_train"], chosen[mean], s=220, facecolors="none", edgecolors="black", linewidths=1.8,
                     zorder=5, label="recommended (by validation)")


# ----------------------------------------------------------------------------------------- training curves
def training_curves(history: pd.DataFrame, metric: str) -> Figure:
    """One panel per arm, one line per seed: the mean training loss per epoch above, the validation metric below,
    and a dot on both at the epoch whose weights were kept (rows with `kept` true)."""
    arms = arms_in_rows(history)
    columns = min(4, len(arms))
    rows = math.ceil(len(arms) / columns)
    figure = Figure(figsize=(3.4 * columns, 3.9 * rows + 0.5), layout="constrained")
    panels = figure.subfigures(rows, columns, squeeze=False).ravel()
    seeds = sorted(history["seed"].unique())
    palette = dict(zip(seeds, sns.color_palette("tab10" if len(seeds) <= 10 else "husl", n_colors=len(seeds))))
    for panel, arm in zip(panels, arms):
        _training_panel(panel, history[history["arm"] == arm], metric, palette)
    handles = [Line2D([], [], color=palette[seed], label=f"seed {seed}") for seed in seeds]
    handles.append(Line2D([], [], color="0.3", marker="o", linestyle="none", label="kept epoch (best_epoch)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize="small")
    return figure


def _training_panel(panel, history: pd.DataFrame, metric: str, palette: dict) -> None:
    """The loss and validation axes of one arm's cells (one fraction), one line per seed."""
    loss_axes, metric_axes = panel.subplots(2, 1, sharex=True)
    for seed, epochs in history.groupby("seed", sort=True):
        kept = epochs[epochs["kept"]]
        for axes, column in ((loss_axes, "loss"), (metric_axes, metric)):
            axes.plot(epochs["epoch"], epochs[column], color=palette[seed], linewidth=1.2)
            axes.plot(kept["epoch"], kept[column], color=palette[seed], marker="o", linestyle="none")
    panel.suptitle(f"{history['arm'].iloc[0]}, fraction {history['fraction'].iloc[0]:g}", fontsize=9)
    loss_axes.set_ylabel("training loss", fontsize=8)
    metric_axes.set_ylabel(f"validation {metric.removeprefix('val_')}", fontsize=8)
    metric_axes.set_xlabel("epoch", fontsize=8)
    metric_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (loss_axes, metric_axes):
        axes.tick_params(labelsize=7)
        axes.grid(True, alpha=0.3)


# ---------------------------------------------------------------------------------------------- heatmaps
def heatmap(summary: pd.DataFrame, rows: list[tuple[str, str]], metric: str, title: str) -> Figure:
    """Mean metric per (row label, arm) x fraction; the best value of each fraction is boxed; † marks no ranking,
    ‡ collapsed cells."""
    fractions = sorted(summary["fraction"].unique())
    by_key = summary.set_index(["arm", "fraction"])
    values = np.full((len(rows), len(fractions)), np.nan)
    text = np.full(values.shape, "", dtype=object)
    for i, (_, arm) in enumerate(rows):
        for j, fraction in enumerate(fractions):
            if (arm, fraction) in by_key.index:
                row = by_key.loc[(arm, fraction)]
                values[i, j] = row[f"{metric}_mean"]
                text[i, j] = f"{values[i, j]:.3f}" + marks(row["no_ranking"], row["collapsed"])
    figure = Figure(figsize=(1.3 * len(fractions) + 3, 0.55 * len(rows) + 1.6), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    for (i, j), label in np.ndenumerate(text):
        if label:
            axes.text(j, i, label, ha="center", va="center", color=text_colour(image.cmap(image.norm(values[i, j]))))
    for j in range(len(fractions)):
        if not np.all(np.isnan(values[:, j])):
            i = int(np.nanargmax(values[:, j]))
            axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    counts = summary.groupby("fraction")["n_train"].first()
    axes.set_xticks(range(len(fractions)), [f"{f:g}\n(n={counts[f]})" for f in fractions])
    axes.set_yticks(range(len(rows)), [label for label, _ in rows])
    axes.set_xlabel("fraction of the training split")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label=f"mean {metric}")
    return figure


# ------------------------------------------------------------------------------------------ significance
def significance_matrices(pairwise: pd.DataFrame, metric: str, alpha: float) -> Figure:
    """Per fraction, the mean paired difference row arm - column arm, starred where the Holm-adjusted t-test
    p < alpha (*), alpha/5 (**), alpha/50 (***)."""
    fractions = sorted(pairwise["fraction"].unique())
    figure, axes_list = _grid(len(fractions), 4.6, 4.0)
    limit = np.nanmax(np.abs(pairwise["mean_diff"])) if pairwise["mean_diff"].notna().any() else 1.0
    for axes, fraction in zip(axes_list, fractions):
        at = pairwise[pairwise["fraction"] == fraction]
        arms = arms_in_rows(at, "arm_a", "arm_b")
        index = {arm: i for i, arm in enumerate(arms)}
        matrix = np.full((len(arms), len(arms)), np.nan)
        stars = np.full(matrix.shape, "", dtype=object)
        for row in at.itertuples(index=False):
            i, j = index[row.arm_a], index[row.arm_b]
            matrix[i, j], matrix[j, i] = row.mean_diff, -row.mean_diff
            stars[i, j] = stars[j, i] = _stars(row.t_p_holm, alpha)
        image = axes.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (i, j), star in np.ndenumerate(stars):
            if not np.isnan(matrix[i, j]):
                axes.text(j, i, f"{matrix[i, j]:+.3f}\n{star}", ha="center", va="center", fontsize=6.5,
                          color=text_colour(image.cmap(image.norm(matrix[i, j]))))
        axes.set_xticks(range(len(arms)), arms, rotation=60, ha="right", fontsize=7)
        axes.set_yticks(range(len(arms)), arms, fontsize=7)
        axes.set_title(f"fraction {fraction:g}", fontsize=9)
    figure.colorbar(image, ax=axes_list, shrink=0.6, label=f"mean paired difference in {metric} (row - column)")
    return figure


def _stars(p: float, alpha: float) -> str:
    if p is None or math.isnan(p):
        return ""
    return "***" if p < alpha / 50 else "**" if p < alpha / 5 else "*" if p < alpha else ""


def critical_difference(tests: pd.DataFrame, ranks: pd.DataFrame) -> Figure:
    """Demsar's critical-difference diagram per tested fraction: arms on the mean-rank axis (1 = best), bars joining
    arms whose ranks differ by less than the Nemenyi critical difference (CD)."""
    tested = tests.dropna(subset=["cd"])
    figure, axes_list = _grid(len(tested), 6.5, 0.35 * tests["n_arms"].max() + 1.8, columns=2)
    for axes, test in zip(axes_list, tested.itertuples(index=False)):
        at = ranks[ranks["fraction"] == test.fraction].sort_values(["mean_rank", "arm"])
        k, margin = test.n_arms, 0.5 * test.n_arms + 1
        cliques = _cliques(at["mean_rank"].to_numpy(), test.cd)
        top = 0.35 + 0.18 * len(cliques)  # label rows start below the clique bars
        half = math.ceil(len(at) / 2)
        axes.set_xlim(1 - margin, k + margin)
        axes.set_ylim(-top - 0.45 * half - 0.4, 2)
        axes.plot([1, k], [0, 0], color="black", linewidth=1)
        for tick in range(1, k + 1):
            axes.plot([tick, tick], [0, 0.15], color="black", linewidth=1)
            axes.text(tick, 0.3, str(tick), ha="center", fontsize=8)
        axes.plot([1, 1 + test.cd], [1.3, 1.3], color="firebrick", linewidth=2)
        axes.text(1 + test.cd / 2, 1.45, f"CD = {test.cd:.2f}", ha="center", fontsize=8, color="firebrick")
        for level, (start, stop) in enumerate(cliques):
            axes.plot([start - 0.03, stop + 0.03], [-0.25 - 0.18 * level] * 2, color="black", linewidth=3)
        for position, row in enumerate(at.itertuples(index=False)):
            left = position < half
            depth = -top - 0.45 * (position if left else len(at) - 1 - position)
            end = 0.8 if left else k + 0.2
            axes.plot([row.mean_rank, row.mean_rank, end], [0, depth, depth], color="0.35", linewidth=0.8)
            label = f"{row.arm}{marks(row.no_ranking, row.collapsed)} ({row.mean_rank:.2f})"
            axes.text(end - 0.05 if left else end + 0.05, depth, label, ha="right" if left else "left", va="center",
                      fontsize=7.5)
        axes.set_title(f"fraction {test.fraction:g}: Friedman p = {test.p:.3g}, {test.n_seeds} seeds", fontsize=9)
        axes.set_axis_off()
    if tested.empty:
        axes_list[0].text(0.5, 0.5, "no fraction had enough arms and seeds for the Friedman test", ha="center")
        axes_list[0].set_axis_off()
    return figure


def _cliques(sorted_ranks: np.ndarray, cd: float) -> list[tuple[float, float]]:
    """Maximal runs of consecutive ranks spanning less than cd (groups not told apart by the Nemenyi test)."""
    runs: list[tuple[int, int]] = []
    for start in range(len(sorted_ranks)):
        stop = start
        while stop + 1 < len(sorted_ranks) and sorted_ranks[stop + 1] - sorted_ranks[start] < cd:
            stop += 1
        if stop > start and not any(s <= start and stop <= e for s, e in runs):
            runs.append((start, stop))
    return [(sorted_ranks[s], sorted_ranks[e]) for s, e in runs]


# --------------------------------------------------------------------------------------------------- ROC
def roc_curves(points: pd.DataFrame, legends: dict[tuple[float, str], str],
               operating: dict[tuple[float, str], tuple[float, float]]) -> Figure:
    """One panel per fraction (points: fraction, arm, curve, seed, fpr, tpr): per arm its pooled curve thick,
    labelled legends[(fraction, arm)], each seed's curve thin, and a cross at operating[(fraction, arm)] (false- and
    true-positive rate) where given; the chance diagonal dotted."""
    fractions = sorted(points["fraction"].unique())
    palette = _palette(arms_in_rows(points))
    figure, axes_list = _grid(len(fractions), 4.2, 4.0)
    for axes, fraction in zip(axes_list, fractions):
        at = points[points["fraction"] == fraction]
        for arm in arms_in_rows(at):
            curves = at[at["arm"] == arm]
            for _, seed_curve in curves[curves["curve"] == "seed"].groupby("seed"):
                axes.plot(seed_curve["fpr"], seed_curve["tpr"], color=palette[arm], linewidth=0.7, alpha=0.35)
            pooled = curves[curves["curve"] == "pooled"]
            axes.plot(pooled["fpr"], pooled["tpr"], color=palette[arm], linewidth=2.2, label=legends[fraction, arm])
            if (fraction, arm) in operating:
                axes.plot(*operating[fraction, arm], marker="X", markersize=9, color=palette[arm],
                          markeredgecolor="black", linestyle="none")
        axes.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1)
        axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false-positive rate)",
                 ylabel="sensitivity (true-positive rate)")
        axes.set_aspect("equal")
        axes.set_title(f"fraction {fraction:g}", fontsize=9)
        axes.legend(fontsize="x-small", loc="lower right")
    return figure


# ----------------------------------------------------------------------------------------------- images
def confusion_matrices(panels: list[tuple[str, np.ndarray]], class_names: list[str]) -> Figure:
    """One confusion matrix per panel (title, counts with true labels as rows), coloured by row share."""
    figure, axes_list = _grid(len(panels), 3.8, 3.4)
    for axes, (title, counts) in zip(axes_list, panels):
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(counts):
            shade = image.cmap(image.norm(shares[i, j]))
            axes.text(j, i, str(count), ha="center", va="center", color=text_colour(shade))
        ticks = range(len(class_names))
        axes.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=7)
        axes.set_yticks(ticks, class_names, fontsize=7)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title, fontsize=8)
    return figure


def tsne(embedding: Embedding, title: str) -> Figure:
    """Scatter of the t-SNE coordinates, one colour per class."""
    figure = Figure(figsize=(6.5, 5.5), layout="constrained")
    axes = figure.add_subplot()
    colours = sns.color_palette("tab10" if len(embedding.class_names) <= 10 else "husl", len(embedding.class_names))
    for label, name in enumerate(embedding.class_names):
        points = embedding.coords[embedding.labels == label]
        axes.scatter(points[:, 0], points[:, 1], s=9, alpha=0.75, color=colours[label], label=f"{name} ({len(points)})")
    axes.legend(fontsize="small", markerscale=2)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=10)
    return figure
