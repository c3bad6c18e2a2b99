"""The report's views of the classes: the class names every table and figure shows, and for the arms the Answer
compares at each fraction, per-class sensitivity, specificity, PPV and NPV at the validation-chosen operating point
and ROC curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.per_class import RESAMPLES, per_class_table, probability_columns
from study.analysis.resampling import Predictions
from study.analysis.roc import POOLED, roc_points
from study.protocol.schema import Protocol
from study.report import figures, tables
from study.report.render.document import Figure, Section, Table

RECOMMENDED, RUNNER_UP = "recommended", "runner-up"


def class_names(done: pd.DataFrame, predictions: Predictions, stored: list[str] | None, features: Path) -> list[str]:
    """The names of the study's classes, in class order: those stored with the cells' predictions, else those of
    dataset.json (stored), else the features file's (stores written before either held them), else "class 0",
    "class 1", ...; empty when no cell tells how many classes there are."""
    frame = next((found for found in map(predictions, done["run_id"]) if found is not None), None)
    if frame is not None:
        count = len(probability_columns(frame))
    elif "n_classes" in done.columns and done["n_classes"].notna().any():
        count = int(done["n_classes"].max())
    else:
        return []
    for names in (None if frame is None else frame.attrs.get("class_names"), stored, _feature_names(features)):
        if names is not None and len(names) == count:
            return [str(name) for name in names]
    return [f"class {k}" for k in range(count)]


def _feature_names(features: Path) -> list[str] | None:
    """The class names of the backbone features file, or None when it is absent or holds none."""
    try:
        with np.load(features, allow_pickle=False) as data:
            return [str(name) for name in data["class_names"]]
    except (OSError, ValueError, KeyError):
        return None


def compared_arms(recommended: pd.DataFrame) -> list[tuple[float, str, str]]:
    """(fraction, arm, role) of the Answer's recommended arm and its runner-up at each fraction."""
    found = []
    for row in recommended.itertuples(index=False):
        found.append((row.fraction, row.arm, RECOMMENDED))
        if isinstance(row.runner_up, str):
            found.append((row.fraction, row.runner_up, RUNNER_UP))
    return found


def roc_table(done: pd.DataFrame, arms: list[tuple[float, str, str]], predictions: Predictions) -> pd.DataFrame:
    """The ROC points (study.analysis.roc) of each compared arm at its fraction, led by fraction and arm."""
    parts = []
    for fraction, arm, _ in arms:
        cells = done[(done["fraction"] == fraction) & (done["arm"] == arm)]
        frames = {int(seed): predictions(run_id) for seed, run_id in zip(cells["seed"], cells["run_id"])}
        points = roc_points({seed: frame for seed, frame in frames.items() if frame is not None})
        if len(points):
            points.insert(0, "arm", arm)
            points.insert(0, "fraction", fraction)
            parts.append(points)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def section(protocol: Protocol, done: pd.DataFrame, summary: pd.DataFrame, recommended: pd.DataFrame,
            predictions: Predictions, split: pd.DataFrame | None, names: list[str]) -> Section:
    """Per-class rates at the operating point and ROC curves of the arms the Answer compares (recommended: the
    Answer's recommendations)."""
    arms = compared_arms(recommended)
    rates = per_class_table(done, arms, predictions, split)
    title = "Per class: operating point and ROC curves"
    if rates.empty:
        return Section(title, ["No per-class rates and no ROC curves: the stored predictions are missing."])
    rates.insert(rates.columns.get_loc("class") + 1, "class_name", [names[k] for k in rates["class"]])
    binary = len(names) == 2
    points = roc_table(done, arms, predictions)
    return Section(title, [
        "For the arm the Answer recommends at each fraction and its runner-up: each test image classified at the "
        "operating point its cell chose on the validation split (with two classes the Youden threshold on P(class "
        "1), with 3+ the class-prior correction, re-applied to the stored test probabilities; cells stored before "
        "the operating point was recorded at the most probable class, the table's rule 'argmax'), and per class, "
        "one class against the rest, sensitivity (recall), specificity, PPV (precision) and NPV"
        + (f". With two classes the rows are of the positive class, class 1 ({names[1]}): its sensitivity and "
           f"specificity are the test's, and {names[0]} is the negative class" if binary else "") + ".",
        "Each rate is the mean over seeds of every seed's rate, with a 95% interval from a two-level bootstrap that "
        f"draws the seeds and, within each, the test images ({RESAMPLES} replicates, fixed seed), so it covers both "
        "the seeds' and the test set's noise. tables/per_class.csv adds the counts summed over seeds, the rate of "
        "those pooled counts and its Wilson interval: the usual interval for one model on one test set, which over "
        "several seeds counts each seed's predictions as images of their own and leaves the seeds' variation out. "
        "A rate of 0 or 1 on every seed gets a bootstrap interval of no width; its Wilson interval does not.",
        *_untested(done),
        "The ROC curves are of the same arms: per fraction, each seed's curve thin and the curve of the seeds' test "
        "predictions pooled thick"
        + (f", of P(class 1) against {names[1]}; a cross marks the mean operating point over seeds (1 - "
           "specificity, sensitivity)" if binary else
           ", each the macro average of the one-vs-rest curves of the classes (their true-positive rates averaged "
           "at the union of their false-positive rates)")
        + ". The legend gives each arm's test AUC as the Answer and the learning curves do: the mean over seeds "
          "with its 95% t interval.",
    ], [
        Table("per_class", "Per-class rates at the validation-chosen operating point, mean [95% CI over seeds and "
                           "test images] over seeds", tables.per_class(rates), rates),
        *_roc_items(points, summary, arms, _operating(rates, binary)),
    ])


def _untested(done: pd.DataFrame) -> list[str]:
    """A sentence on the classes some cells' test splits hold no image of (study.analysis.per_class.unmeasured)."""
    untested = sorted(set(done["untested_classes"]) - {""}) if "untested_classes" in done else []
    if not untested:
        return []
    return [(f"Some cells' test splits hold no image of {'; '.join(untested)}: such a class's sensitivity is the "
             "mean over the seeds whose test split holds it, and '-' where none does; TP + FN counts its test images.")]


def _roc_items(points: pd.DataFrame, summary: pd.DataFrame, arms: list[tuple[float, str, str]],
               operating: dict[tuple[float, str], tuple[float, float]]) -> list:
    """The ROC figure and its points (CSV only); a sentence instead when no test set holds two classes."""
    if points.empty:
        return ["No ROC curve: no stored test set holds images of two classes."]
    figure = figures.roc_curves(points, _legends(summary, arms), operating)
    crosses = "; crosses: the mean operating point over seeds" if operating else ""
    return [Figure("roc", "ROC curves of the recommended arm and its runner-up at each fraction (thick: seeds "
                          f"pooled; thin: each seed{crosses})", *figures.encode(figure)),
            Table("roc_curves", "ROC curve points of the pooled curves (CSV only)", None,
                  points[points["curve"] == POOLED].drop(columns=["curve", "seed"]))]


def _legends(summary: pd.DataFrame, arms: list[tuple[float, str, str]]) -> dict[tuple[float, str], str]:
    """Per (fraction, arm): 'arm (role) marks: AUC mean [95% CI]' from the summary over seeds (marks: † some cell
    has no ranking, ‡ some collapsed)."""
    by_key = summary.set_index(["fraction", "arm"])
    legends = {}
    for fraction, arm, role in arms:
        row = by_key.loc[(fraction, arm)]
        marks = tables.marks(row["no_ranking"], row["collapsed"])
        legends[fraction, arm] = (f"{arm} ({role}){' ' + marks if marks else ''}: AUC "
                                  + tables.estimate(row["auc_mean"], row["auc_ci_low"], row["auc_ci_high"]))
    return legends


def _operating(rates: pd.DataFrame, binary: bool) -> dict[tuple[float, str], tuple[float, float]]:
    """Per (fraction, arm) of a binary task: the mean operating point (1 - specificity, sensitivity)."""
    if not binary:
        return {}
    return {(row.fraction, row.arm): (1 - row.specificity_mean, row.sensitivity_mean)
            for row in rates.itertuples(index=False)}
