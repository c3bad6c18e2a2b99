"""The report of one protocol, rebuilt from its stored cells alone: CSV summary, Markdown and learning curves.

Rebuilding from the same cells gives byte-identical summary.csv and summary.md. No TensorFlow is imported.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from study.analysis import (
    DEGENERATE_AUC_MARGIN,
    DEGENERATE_SHARE,
    METRICS,
    arm_order,
    done_cells,
    is_degenerate,
    summarize,
)
from study.errors import StudyError

log = logging.getLogger(__name__)

FLOAT_FORMAT = "%.6f"
DAGGER = "†"
MAX_ERROR_CHARS = 200


def build_report(cells: pd.DataFrame, out_dir: Path, title: str, metric: str = "auc") -> list[Path]:
    """Write summary.csv, summary.md and learning-curve PNGs under out_dir; return the written paths."""
    if metric not in METRICS:
        raise StudyError(f"unknown report metric {metric!r}; expected one of {', '.join(METRICS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(cells)
    curves = {"learning_curve.png": metric} | ({} if metric == "accuracy" else {"learning_curve_accuracy.png": "accuracy"})
    written = [
        _write_atomic(out_dir / "summary.csv", _summary_csv(summary)),
        _write_atomic(out_dir / "summary.md", render_markdown(cells, summary, title, metric, list(curves)).encode()),
        *(_write_atomic(out_dir / name, _learning_curve_png(summary, title, m)) for name, m in curves.items()),
    ]
    log.info("report of %d cells written to %s", len(cells), out_dir)
    return written


# ------------------------------------------------------------------------------------------------ files
def _write_atomic(path: Path, data: bytes) -> Path:
    """Write to a hidden temporary file in the same folder, then rename it over path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _summary_csv(summary: pd.DataFrame) -> bytes:
    return summary.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode()


# --------------------------------------------------------------------------------------------- markdown
def render_markdown(cells: pd.DataFrame, summary: pd.DataFrame, title: str, metric: str, figures: list[str]) -> str:
    """The Markdown report: counts, one table per metric, degenerate and failed cells."""
    done = done_cells(cells)
    failed = cells[cells["status"] == "failed"] if "status" in cells.columns else cells.iloc[0:0]
    lines = [f"# {title}", "", f"Cells: {len(done)} done, {len(failed)} failed.", ""]
    if summary.empty:
        lines += ["No finished cells: there is nothing to summarize yet.", ""]
    else:
        lines += [f"![{name}]({name})" for name in figures] + [""]
        for name in [metric, *(m for m in METRICS if m != metric)]:
            lines += _metric_section(summary, name)
        lines += _degenerate_section(done)
    lines += _failed_section(failed)
    return "\n".join(lines).rstrip("\n") + "\n"


def _metric_section(summary: pd.DataFrame, metric: str) -> list[str]:
    """A table of "mean [ci_low, ci_high]": arms as rows, fractions as columns; empty if the metric has no values."""
    if summary[f"{metric}_mean"].isna().all():
        return []
    fractions = sorted(summary["fraction"].unique())
    by_key = {(row.arm, row.fraction): row for row in summary.itertuples(index=False)}
    header = ["arm", *(_fraction_label(summary, f) for f in fractions)]
    rows = [
        [arm, *(_cell_text(by_key.get((arm, f)), metric) for f in fractions)] for arm in arm_order(summary["arm"])
    ]
    lines = [f"## {metric}: mean [95% CI] over seeds", "", *_table(header, rows), ""]
    if summary["degenerate"].gt(0).any():
        lines += [
            f"{DAGGER} k/n: k of the n seeds in this cell are degenerate (max predicted share >= {DEGENERATE_SHARE} "
            f"or |AUC - 0.5| < {DEGENERATE_AUC_MARGIN}); they are included in the mean and listed below.",
            "",
        ]
    return lines


def _fraction_label(summary: pd.DataFrame, fraction: float) -> str:
    """Fraction of the training pool, with its image count when every arm used the same."""
    counts = summary.loc[summary["fraction"] == fraction, "n_train"].unique()
    return f"{fraction:g} (n={counts[0]})" if len(counts) == 1 else f"{fraction:g}"


def _cell_text(row, metric: str) -> str:
    if row is None:
        return "-"
    values = [getattr(row, f"{metric}_{s}") for s in ("mean", "ci_low", "ci_high")]
    text = _number(values[0]) + ("" if math.isnan(values[1]) else f" [{_number(values[1])}, {_number(values[2])}]")
    return text + (f" {DAGGER}{row.degenerate}/{row.n_seeds}" if row.degenerate else "")


def _degenerate_section(done: pd.DataFrame) -> list[str]:
    flagged = done[is_degenerate(done)]
    if flagged.empty:
        return []
    flagged = flagged.sort_values(["arm", "fraction", "seed", "run_id"], kind="mergesort")
    rows = [
        [r.run_id, r.arm, f"{r.fraction:g}", str(r.seed), _number(r.max_predicted_share), _number(r.auc)]
        for r in flagged.itertuples(index=False)
    ]
    header = ["run_id", "arm", "fraction", "seed", "max_predicted_share", "auc"]
    return [f"## {DAGGER} Degenerate cells", "", *_table(header, rows), ""]


def _failed_section(failed: pd.DataFrame) -> list[str]:
    if failed.empty:
        return []
    failed = failed.sort_values("run_id", kind="mergesort")
    rows = [
        [str(r.get("run_id")), str(r.get("arm", "")), _fraction_text(r.get("fraction")), str(r.get("seed", "")),
         _first_line(r.get("error"))]
        for _, r in failed.iterrows()
    ]
    return ["## Failed cells", "", *_table(["run_id", "arm", "fraction", "seed", "error"], rows), ""]


def _fraction_text(fraction) -> str:
    return "" if fraction is None or pd.isna(fraction) else f"{float(fraction):g}"


def _first_line(error) -> str:
    if error is None or (isinstance(error, float) and math.isnan(error)) or not str(error).strip():
        return "(no message)"
    line = str(error).strip().splitlines()[0]
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def _number(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    return [
        "| " + " | ".join(map(escape, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(escape, row)) + " |" for row in rows),
    ]


# ------------------------------------------------------------------------------------------------ figures
def _learning_curve_png(summary: pd.DataFrame, title: str, metric: str) -> bytes:
    """Metric vs training images on a log axis: one line per arm with markers and its 95% band over seeds."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    with sns.axes_style("whitegrid"):
        axes = figure.add_subplot()
    mean, low, high = (f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high"))
    data = summary.dropna(subset=[mean])
    if data.empty:
        axes.text(0.5, 0.5, f"no finished cells with {metric}", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    else:
        arms = arm_order(data["arm"])
        palette = dict(zip(arms, sns.color_palette(n_colors=len(arms))))
        sns.lineplot(data=data, x="n_train", y=mean, hue="arm", hue_order=arms, palette=palette, marker="o",
                     errorbar=None, ax=axes)
        for arm, points in data.groupby("arm", sort=False):
            points = points.sort_values("n_train")
            axes.fill_between(points["n_train"], points[low], points[high], color=palette[arm], alpha=0.15, linewidth=0)
        axes.set_xscale("log")
        ticks = sorted(data["n_train"].unique())
        axes.set_xticks(ticks, [str(tick) for tick in ticks])
        axes.minorticks_off()
        axes.set_xlabel("training images (log scale)")
        axes.set_ylabel(metric)
        axes.legend(title="arm (band: 95% CI over seeds)")
    axes.set_title(f"{title}: {metric} vs training set size")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
