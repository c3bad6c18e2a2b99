"""The report of one protocol, rebuilt from its results store alone (never TensorFlow): the sections of the document,
each from the analysis modules, then written as index.html, report.md, tables/ and figures/ (study.render).

Rebuilding from the same store gives identical tables: cells are put in a fixed order, the bootstrap and t-SNE
use fixed seeds, and no date or path that changes between builds is written.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from study.analysis.claims import RULE as CLAIM_RULE
from study.analysis.claims import evaluate_claims
from study.analysis.curves import MIN_SIZES, fit_curves
from study.analysis.embedding import FeaturesError, features_path, tsne_map
from study.analysis.per_class import unmeasured
from study.analysis.sequential import FUTILITY_POWER, SequentialRecord, look_table, record_for, verdicts
from study.analysis.significance import (
    TWO_LEVEL_RESAMPLES,
    friedman_tables,
    mcnemar_table,
    nemenyi_table,
    paired_values,
    pairwise_table,
)
from study.analysis.summaries import (
    ARM_COLUMNS,
    COLLAPSE_SHARE,
    KEYS,
    NO_RANKING_AUC_MARGIN,
    RULE_FREE_METRICS,
    arm_order,
    best_cell,
    flagged,
    of_plan,
    summarize,
)
from study.core.vocabulary import METRICS, CellStatus, Direction, direction
from study.data.splits import source_has_split, split_description
from study.protocol.arms import expand_arms, protocol_arms
from study.protocol.schema import Protocol
from study.protocol.strategy_registry import STRATEGIES, STRATEGY_NAMES, Family
from study.report import answer, classes, figures, references, tables
from study.report.render.document import Document, Figure, Section, Table
from study.report.render.output_folder import write_document
from study.store.results import ResultStore
from study.store.tuning_choices import current_choices

log = logging.getLogger(__name__)

CELL_COLUMNS = [  # the per-cell table written to tables/cells.csv (columns a cell stored; older cells lack some)
    "run_id", "status", "arm", "strategy", "fraction", "seed", "n_train", "n_val", "n_test", "backbone", "weights",
    "resize", "lr_backbone", "lr_head", "lr_output", "accuracy", "top2_accuracy", "balanced_accuracy", "auc",
    "f1_macro", "log_loss", "accuracy_op", "balanced_accuracy_op", "f1_macro_op", "kappa_quadratic", "mae_class",
    "operating_rule", "operating_point", "majority_rate", "max_predicted_share", "degenerate", "no_ranking",
    "collapsed", "untested_classes", "epochs", "best_epoch", "steps",
    "steps_per_epoch", "precise_bn", "monitor", "monitor_value", "train_seconds", "trace_seconds", "threads",
    "source_file", "adopted_from", "error",
]
KINDS = ["no_ranking", "collapsed"]  # the two kinds of degenerate cell (study.analysis.summaries.flagged)


def build_report(protocol: Protocol, store: ResultStore, out_dir: Path, planned: Collection[str]) -> list[Path]:
    """Write the report of the protocol's stored results under out_dir: the cells whose run ids are planned, whatever
    else the store holds (so that it is the same report whatever other versions of the protocol stored); index.html
    is the first path returned."""
    paths = write_document(stored_document(protocol, store, planned), out_dir)
    log.info("report written to %s", out_dir)
    return paths


def stored_document(protocol: Protocol, store: ResultStore, planned: Collection[str]) -> Document:
    """The report of the planned cells in the store, as a document (nothing written)."""
    features = features_path(store.root, protocol.backbone.name, protocol.dataset.size)
    dataset_info = store.dataset_info() or {}
    return report_document(protocol, of_plan(store.cells(), planned)[0],
                           functools.lru_cache(maxsize=None)(store.predictions), features,
                           tuning_choices=list(current_choices(store.tuning_records(), protocol).values()),
                           sequential=record_for(protocol, store.sequential()),
                           official_split=dataset_info.get("official_split"),
                           split=store.split(), class_names=dataset_info.get("class_names"))


def report_document(protocol: Protocol, cells: pd.DataFrame, predictions, features: Path,
                    tuning_choices: list[dict] | None = None, official_split: bool | None = None,
                    sequential: SequentialRecord | None = None, split: pd.DataFrame | None = None,
                    class_names: list[str] | None = None) -> Document:
    """The report as a document: the answer, overview, tuning, claims, per-class rates and ROC curves, curves,
    significance, heatmaps, images, cell lists.

    official_split: whether the run found a split in the source (None: as far as the protocol tells); split: the
    stored split (training split sizes and groups), if any; class_names: dataset.json's, if any. With the record
    of a run that added seeds until decided (sequential), the claims' verdicts are the sequential ones. cells are
    the protocol's own (one per arm, fraction and seed)."""
    title = f"{protocol.name}: {protocol.description}".rstrip(": ")
    done = flagged(cells)
    failed = cells[cells["status"] == CellStatus.FAILED] if "status" in cells.columns else cells.iloc[0:0]
    if not done.empty:
        names = classes.class_names(done, predictions, class_names, features)
        done = unmeasured(done, split, names)
    sections = [section for section in (_overview(protocol, done, failed, official_split, split),
                                        _tuning(protocol, done, tuning_choices or [])) if section is not None]
    if done.empty:
        sections.append(Section("Results", ["No finished cells: there is nothing to summarize yet."]))
        return Document(title, sections + [_cell_lists(done, failed)])
    spec = protocol.report
    summary = _summary(done)
    claims = _claim_results(protocol, done, predictions, sequential)
    curves = fit_curves(summary, spec.metric, spec.target)
    pairwise = _pairwise_with_kinds(pairwise_table(done, spec.metric, predictions=predictions), done, spec.metric)
    sizes = answer.sizes_needed(done, summary, curves, spec.metric, spec.target)
    recommended = answer.recommendations(done, summary, pairwise, spec.metric, spec.alpha)
    parts = [
        _answer(protocol, done, summary, curves, sizes, recommended, claims, official_split, split),
        *sections,
        _claims(protocol, claims, sequential, done),
        classes.section(protocol, done, summary, recommended, predictions, split, names),
        _learning_curves(summary, curves, done, spec, sizes),
        _training_curves(done),
        _published(protocol, summary),
        _pairwise(pairwise, spec),
        _friedman(done, spec),
        _mcnemar(protocol, done, predictions),
        _heatmaps(summary, done, spec),
        _images(protocol, done, summary, predictions, features, names),
        _cell_lists(done, failed),
        _all_metrics(summary, spec.metric),
    ]
    return Document(title, [section for section in parts if section is not None])


def _answer(protocol: Protocol, done: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame,
            sizes: pd.DataFrame, recommended: pd.DataFrame, claims: tuple, official_split: bool | None,
            split: pd.DataFrame | None) -> Section:
    """The answer first: the recommended arm per fraction, the training size for the target, the claims in a
    sentence each (claims: their summary and per-fraction rows first), the warnings, and the learning curves with
    the recommendations marked."""
    spec = protocol.report
    items: list = [Table("answer", f"Recommended arm per fraction (best mean validation score over seeds, never a "
                                   f"test metric), its test {spec.metric}, and the paired t-test against the runner-up by "
                                   "validation (one comparison per fraction, Holm-adjusted over the fractions)", answer.recommendation_display(recommended, spec.metric),
                         recommended)]
    if len(sizes):
        items.append(Table("answer_sizes", f"Training images needed for {spec.metric} {spec.target:g}",
                           answer.size_display(sizes, spec.metric), sizes))
    else:
        items.append("No target is set (report.target), so no training size is estimated.")
    items += answer.claim_sentences(claims[0])
    items += answer.same_pair_sentences(recommended, claims[1])
    items += answer.reading_warnings(done, summary, split, _seeded(protocol, official_split), _grouped(protocol, split))
    fitted = "with fitted inverse power laws" if curves["a"].notna().any() else (
        f"(no curve fitted: an arm needs {MIN_SIZES} or more training sizes)")
    items.append(_figure("learning_curve", f"{spec.metric} against training-set size {fitted}; ringed: the "
                                           "recommended arm at each fraction",
                         figures.learning_curves(summary, curves, spec.metric, spec.target,
                                                 dict(zip(recommended["fraction"], recommended["arm"])))))
    return Section("Answer", [
        f"Which arm to use at each training-set size, how many training images reach the target, and what the "
        f"claims found, on {spec.metric}. Intervals are 95% t intervals over seeds, clipped to the metric's range.",
    ], items)


def _seeded(protocol: Protocol, official_split: bool | None) -> bool:
    """Whether the cells trained on a seeded split (a source without a split of its own, or dataset.resplit)."""
    official = source_has_split(protocol.dataset) if official_split is None else official_split
    return protocol.dataset.resplit or official is False


def _grouped(protocol: Protocol, split: pd.DataFrame | None) -> bool:
    """Whether the split keeps groups (patients) on one side: a group column in the protocol or the stored split."""
    if getattr(protocol.dataset, "group_column", None):
        return True
    return split is not None and bool(split["group"].notna().any())


def tuning_table(choices: list[dict], done: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """One row per stored tuning choice, in arm order (of the protocol's arms and the cells'), choices of other arms
    last: values, best validation score, trials spent, cells using it."""
    columns = ["arm", "fraction", "engine", "trials", "complete", "pruned", "failed", "metric", "best_value",
               "trial_seconds", "values", "cells"]
    if not choices:
        return pd.DataFrame(columns=columns)
    rows = []
    for record in choices:
        values = json.dumps(record["values"], sort_keys=True)
        used = (done["arm"] == record["arm"]) & (done["tuned_json"] == values) if "tuned_json" in done else []
        rows.append({**{key: record[key] for key in columns[:-2]}, "values": values, "cells": int(sum(used))})
    frame = pd.DataFrame(rows, columns=columns)
    known = pd.concat([_arm_columns(protocol), *([done[ARM_COLUMNS]] if len(done) else [])], ignore_index=True)
    rank = {arm: i for i, arm in enumerate(arm_order(known))}
    ranked = frame.assign(_rank=frame["arm"].map(rank).fillna(len(rank)))
    order = ranked.sort_values(["_rank", "fraction"], kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def _arm_columns(protocol: Protocol) -> pd.DataFrame:
    """The stored arm columns (ARM_COLUMNS) of the protocol's arms."""
    return pd.DataFrame([(arm.label, arm.strategy, arm.depth, arm.truncate_at) for arm in protocol_arms(protocol)],
                        columns=ARM_COLUMNS)


def training_history(done: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch of every seed's cell of each arm at the arm's largest fraction with a stored history
    (history_json); `kept` marks the epoch whose weights were kept (best_epoch). Empty when no cell stored one."""
    if "history_json" not in done.columns:
        return pd.DataFrame()
    stored = done[done["history_json"].map(_has_history)]
    drawn = stored[stored["fraction"] == stored.groupby("arm")["fraction"].transform("max")]
    epochs = [_epochs(cell) for _, cell in drawn.iterrows()]
    return pd.concat(epochs, ignore_index=True) if epochs else pd.DataFrame()


def _has_history(value) -> bool:
    """Whether a stored history_json value holds at least one epoch."""
    return isinstance(value, str) and bool(json.loads(value))


def _epochs(cell: pd.Series) -> pd.DataFrame:
    """A cell's stored history as rows, led by the cell's arm, fraction, seed and run id."""
    frame = pd.DataFrame(json.loads(cell["history_json"]))
    for position, column in enumerate(["arm", "fraction", "seed", "run_id"]):
        frame.insert(position, column, cell[column])
    return frame.assign(kept=frame["epoch"] == cell["best_epoch"])


def validation_key(history: pd.DataFrame, done: pd.DataFrame) -> str:
    """The history key drawn as the validation metric: the cells' monitor when one monitor was stored for every
    epoch drawn, else val_auc."""
    monitors = done.loc[done["run_id"].isin(history["run_id"]), "monitor"].unique()
    if len(monitors) == 1 and monitors[0] in history.columns and history[monitors[0]].notna().all():
        return str(monitors[0])
    return "val_auc"


def _figure(name: str, caption: str, figure) -> Figure:
    return Figure(name, caption, *figures.encode(figure))


def _summary(done: pd.DataFrame) -> pd.DataFrame:
    """Summaries over seeds with the counts of cells with no ranking and collapsed per arm and fraction."""
    summary = summarize(done)
    return summary.assign(**_kind_counts(done, KEYS, summary[KEYS]))


def _kind_counts(done: pd.DataFrame, keys: list[str], rows: pd.DataFrame) -> dict[str, list[int]]:
    """Per row of rows (values of done's keys, in order): how many of done's cells there have no ranking and how
    many collapsed (0 where none)."""
    counters: dict[str, collections.Counter[tuple]] = {kind: collections.Counter() for kind in KINDS}
    for cell in done[[*keys, *KINDS]].itertuples(index=False):
        for kind, flag in zip(KINDS, cell[len(keys):]):
            counters[kind][tuple(cell[:len(keys)])] += int(flag)
    return {kind: [counter[tuple(row)] for row in rows.itertuples(index=False)] for kind, counter in counters.items()}


# --------------------------------------------------------------------------------------------- sections
def _own_backbones(protocol: Protocol) -> str:
    """A sentence naming the arms that use a network of their own, or nothing."""
    own = [f"{arm.label} uses {arm.backbone.name}" + (f" of width {arm.backbone.width}" if arm.backbone.width else "")
           + f" ({arm.backbone.weights if STRATEGIES[arm.strategy].pretrained else 'none'} weights)"
           for strategy in protocol.strategies for arm in expand_arms(strategy, protocol) if arm.backbone]
    return f" Networks of their own: {'; '.join(own)}." if own else ""


def _overview(protocol: Protocol, done: pd.DataFrame, failed: pd.DataFrame, official_split: bool | None,
              split: pd.DataFrame | None) -> Section:
    spec = protocol.report
    dataset = protocol.dataset
    name = getattr(dataset, "name", None) or getattr(dataset, "path", None) or "built-in images"
    paragraphs = [
        f"Dataset: {dataset.source} {name} at {dataset.size} px{_source_file(dataset, done)}. Backbone: "
        f"{protocol.backbone.name} "
        f"({protocol.backbone.weights} weights; scratch arms start from random weights)." + _own_backbones(protocol),
        f"Split: {split_description(dataset, official_split)}{_groups_sentence(protocol, split, official_split)}",
        _cell_counts(done, failed),
        *_degenerate_rules(spec.exclude_degenerate),
        f"Image resize filter (to {dataset.size} px): {_stored_values(done, 'resize')}. TensorFlow threads per "
        f"cell: {_stored_values(done, 'threads')}.",
        f"Report metric: {spec.metric}; significance level alpha = {spec.alpha:g}; target for the training size "
        f"needed: {'none set (report.target)' if spec.target is None else f'{spec.metric} = {spec.target:g}'}.",
        "Versions stored with the cells: " + _versions(done) + ".",
    ]
    return Section("Overview", paragraphs)


def _groups_sentence(protocol: Protocol, split: pd.DataFrame | None, official_split: bool | None) -> str:
    """How the split treats groups (patients, videos), ending the Overview's split sentence: the group column and
    the groups per side, or the leakage warning for a seeded split without groups."""
    if not _grouped(protocol, split):
        if _seeded(protocol, official_split):
            return ("; no group column, so images of one patient may sit on both sides of it (every test metric is "
                    "then flattered).")
        return "."
    column = getattr(protocol.dataset, "group_column", None)
    named = f" by the column {column}" if column else ""
    if split is None or split.empty:
        return f", grouped{named}: a group's images stay on one side."
    fixed = split["seed"].isna()
    block = split[fixed] if fixed.any() else split[split["seed"] == split["seed"].min()]
    which = "" if fixed.any() else " in the first seed's split"
    per_side = block.groupby("split")["group"].nunique()
    sides = ", ".join(f"{per_side.get(side, 0)} in {side}" for side in ("train", "val", "test"))
    shared = int(block.groupby("group")["split"].nunique().gt(1).sum())
    where = "" if not shared else f"; {shared} group(s) sit on more than one side"
    return f", grouped{named}: {block['group'].nunique()} groups{which}, {sides}{where}."


def _source_file(dataset, done: pd.DataFrame) -> str:
    """For MedMNIST, the file the cells read (a size picks <name>.npz or <name>_<px>.npz), else nothing (also for
    cells stored before they recorded it)."""
    if dataset.source != "medmnist" or "source_file" not in done.columns or done["source_file"].isna().all():
        return ""
    return f", read from {_stored_values(done, 'source_file')}"


def _cell_counts(done: pd.DataFrame, failed: pd.DataFrame) -> str:
    """The overview's count of done, failed and degenerate cells, the two kinds of degenerate cell apart."""
    both = int((done["no_ranking"] & done["collapsed"]).sum())
    return (f"Cells: {len(done)} done, {len(failed)} failed, {int(done['degenerate'].sum())} degenerate: "
            f"{int(done['no_ranking'].sum())} with no ranking ({tables.DAGGER}), {int(done['collapsed'].sum())} "
            f"collapsed at 0.5 ({tables.DOUBLE_DAGGER})" + (f", {both} of them both" if both else "") + ".")


def _degenerate_rules(exclude: bool) -> list[str]:
    """What makes a cell degenerate, each kind in a sentence, and what claims do with it."""
    switch = "report.exclude_degenerate" if exclude else "report.exclude_degenerate: false"
    return [
        f"No ranking ({tables.DAGGER}): the test AUC is within {NO_RANKING_AUC_MARGIN} of chance (0.5), so the scores "
        "do not order the classes; such cells are shown, and "
        + ("left out of claims" if exclude else "kept in claims") + f" ({switch}) unless a claim says otherwise.",
        f"Collapsed at 0.5 ({tables.DOUBLE_DAGGER}): at the default rule (the most probable class; threshold 0.5 "
        f"with two classes) the cell predicts one class for at least {COLLAPSE_SHARE:.0%} of the test images, while "
        "its scores may still rank them; such cells are shown, and "
        + (f"kept in claims on {_listed(RULE_FREE_METRICS)} but left out of claims on the argmax-based metrics "
           f"{_listed(set(METRICS) - RULE_FREE_METRICS)}" if exclude else "kept in claims")
        + f" ({switch}) unless a claim says otherwise.",
    ]


def _listed(metrics: set[str]) -> str:
    """The metrics in the report's order, comma-separated."""
    return ", ".join(metric for metric in METRICS if metric in metrics)


def _stored_values(done: pd.DataFrame, column: str) -> str:
    """The distinct values cells stored in a column, each with its cell count when they differ; 'not stored' stands
    for cells stored before the column existed."""
    values = done[column] if column in done.columns else pd.Series(None, index=done.index, dtype=object)
    counts = pd.Series([_stored_text(value) for value in values], dtype=object).value_counts().sort_index()
    if len(counts) <= 1:
        return next(iter(counts.index), "not stored")
    return ", ".join(f"{value} ({count} cells)" for value, count in counts.items())


def _stored_text(value) -> str:
    """A stored value as text: whole floats as integers (a column with gaps reads back as float)."""
    if pd.isna(value):
        return "not stored"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _tuning(protocol: Protocol, done: pd.DataFrame, choices: list[dict]) -> Section | None:
    tuning = protocol.tuning
    if tuning is None:
        return None
    frame = tuning_table(choices, done, protocol)
    if frame.empty:
        return Section("Tuning", ["The protocol asks for tuning, but no arm has finished its tuning yet."])
    fair = f"every arm got the same budget of {tuning.trials} trials"
    where = "at each fraction" if tuning.scope == "per_fraction" else "once, at the fraction shown, for all fractions"
    goal = "maximising" if direction(protocol.tuning_metric()) is Direction.MAXIMIZE else "minimising"
    return Section("Tuning", [
        f"Each arm's hyperparameters were tuned with {tuning.engine} on the validation split only (the test split "
        f"is never used while tuning), {where}, {goal} {protocol.tuning_metric()} after training on seed "
        f"{tuning.seed}'s subset; {fair}. The chosen values replace the protocol's in every cell of the arm "
        "(they are part of its run id and stored with it). Trials: complete, pruned (stopped early by the median "
        "pruner) and failed; seconds: the trials' training time.",
    ], [Table("tuning", "Chosen hyperparameters and the tuning budget spent per arm", tables.tuning(frame), frame)])


def _versions(done: pd.DataFrame) -> str:
    parts = []
    for column, label in (("study_version", "study"), ("tensorflow_version", "TensorFlow"), ("keras_version", "Keras")):
        values = sorted(str(v) for v in done[column].dropna().unique()) if column in done.columns else []
        parts.append(f"{label} {', '.join(values) or 'unknown'}")
    return "; ".join(parts)


TWO_LEVEL = (
    "Both sources of noise: beside the verdict, each claim's advantage gets a 95% interval from a paired two-level "
    "bootstrap that resamples the seeds and, within each seed's cells, the test images (the same images for a and "
    "b), and P(A > B), the probability that a beats b on a new seed and a new draw of test images (Bouthillier et "
    "al. 2021). The test set is shared by every seed, so the seed interval alone leaves its noise out. Recomputed "
    "from the stored predictions for auc, accuracy and balanced_accuracy; '-' for other metrics."
)


def _claim_results(protocol: Protocol, done: pd.DataFrame, predictions, sequential: SequentialRecord | None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The claims' summary (with the sequential verdicts where a run added seeds until decided), their per-fraction
    rows, and the table of the sequential looks (None without looks)."""
    summary, detail = evaluate_claims(done, protocol.claims, protocol.report, protocol.fractions,
                                      predictions=predictions)
    if sequential is None or not sequential.looks:
        return summary, detail, None
    looks = look_table(done, protocol, sequential)
    outcome = verdicts(looks, sequential)
    summary = summary.assign(verdict=[outcome[claim][0] for claim in summary["claim"]],
                             reason=[outcome[claim][1] for claim in summary["claim"]])
    return summary, detail, looks


def _claims(protocol: Protocol, results: tuple, sequential: SequentialRecord | None, done: pd.DataFrame) -> Section:
    rule = "Rule: " + CLAIM_RULE
    if not protocol.claims:
        return Section("Claims", ["The protocol declares no claims (add a claims: section to test some).", rule])
    summary, detail, looks = results
    paragraphs, items = [rule, TWO_LEVEL], []
    if looks is not None:
        assert sequential is not None  # looks come from the record of a sequential run
        paragraphs.append(_sequential_paragraph(sequential))
        items.append(Table("claim_looks", "The looks of the sequential design: each claim's primary test at the "
                                          "look's seeds against its nominal level, until the look that decided it "
                                          "or after which its predictive power left it undecidable (futility)",
                           tables.claim_looks(looks), looks))
        if sequential.targets:
            seeds = _seeds_per_cell(done)
            paragraphs.append(_targeted_paragraph(sequential, seeds))
            items.append(Table("seeds", "Seeds per arm and fraction (targeted looks train added seeds only where an "
                                        "open claim reads)", seeds.reset_index(), seeds.reset_index()))
    return Section("Claims", paragraphs, [
        Table("claims", "Claims and verdicts (effect: advantage averaged over the claim's fractions per seed; "
                        "Kendall's tau for trend claims)",
              tables.claims(summary), summary),
        *items,
        Table("claim_fractions", _fractions_caption(protocol, looks), tables.claim_details(detail), detail),
    ])


def _fractions_caption(protocol: Protocol, looks: pd.DataFrame | None) -> str:
    """The per-fraction table's caption: after sequential looks its tests are descriptive, at the fixed level."""
    caption = "Where each claim holds: per fraction, Holm-adjusted over the claim's fractions"
    if looks is None:
        return caption + " (these rows do not change the verdict)"
    return (caption + f", at alpha = {protocol.report.alpha:g} over every stored seed: descriptive only, not tested "
            "at the looks' nominal levels, and they do not change the verdict")


def _sequential_paragraph(record: SequentialRecord) -> str:
    """How the seeds were added: the design, the looks made and why the run stopped."""
    plan = record.plan
    made = ", ".join(str(count) for count in record.looks)
    stopped = f"It stopped because {record.stopped}." if record.stopped else (
        "The run has not finished its looks (interrupted or still running); verdicts are those of the looks made.")
    return (f"Seeds were added until the claims were decided: {plan.method}. Looks were planned at "
            f"{', '.join(str(c) for c in plan.counts())} seeds (the protocol's {len(plan.base_seeds)}, then "
            f"{plan.seeds_per_round} more per look, up to {plan.max_seeds}); {len(record.looks)} look(s) were made, at "
            f"{made} seeds. {stopped} A claim's verdict is the one of the first look whose primary test decided it at "
            "that look's nominal level; effects and intervals below use every stored seed, and after early stopping "
            "they lean slightly away from zero. An undecided claim whose predictive power (the chance, averaged over "
            "the effect's uncertainty, that the last planned look decides it) fell below "
            f"{FUTILITY_POWER:.0%} at a look asked for no more seeds and is reported as undecidable within "
            f"{plan.max_seeds} seeds, with the seeds a test with 80% power would need; this futility rule never "
            "makes a claim supported or contradicted, so the error rate stays at most alpha.")


def _seeds_per_cell(done: pd.DataFrame) -> pd.DataFrame:
    """Done seeds per arm (rows, in the report's order) and fraction (columns)."""
    table = pd.crosstab(done["arm"], done["fraction"]).reindex(arm_order(done))
    table.columns = [f"{fraction:g}" for fraction in table.columns]
    return table.rename_axis("arm")


def _targeted_paragraph(record: SequentialRecord, seeds: pd.DataFrame) -> str:
    """What the targeted looks trained, and what that means for the tables that average over seeds."""
    looks = ", ".join(str(count) for count in sorted(record.targets))
    return (f"The seeds added for the looks at {looks} seeds trained only the cells that the claims still open read "
            "(a strategy name reads all of its arms at the claim's fractions); a decided claim, or one that cannot be "
            f"decided within {record.plan.max_seeds} seeds, asked for no more. So arms and fractions have from "
            f"{int(seeds.to_numpy().min())} to {int(seeds.to_numpy().max())} seeds (table seeds): the summaries, "
            "learning curves and pairwise tests use the seeds each has, and a pairwise test only the seeds both "
            "sides share.")


def _learning_curves(summary: pd.DataFrame, curves: pd.DataFrame, done: pd.DataFrame, spec,
                     sizes: pd.DataFrame) -> Section:
    curves = curves.assign(**_kind_counts(done, ["arm"], curves[["arm"]]))
    return Section("Learning curves", [
        f"Mean {spec.metric} over seeds against training images, with 95% t intervals (clipped to the metric's "
        "range: [0, 1] for AUC, accuracies and F1; the figure's axis too). Per arm, an inverse power law "
        "a - b n^-c fitted by weighted least squares (weights: standard errors over seeds; b >= 0, 0.01 <= c <= 3, "
        f"a <= 1, so the curve rises to the asymptote a), where the arm has {MIN_SIZES} or more training sizes; "
        "n needed solves the fit for the target. Extrapolations are marked as such. The figure is in the Answer "
        "section." + _seed_counts(summary) + _answer_and_fit(sizes),
    ], [
        Table(f"summary_{spec.metric}",
              f"{spec.metric}: mean [95% CI] over seeds ({tables.DAGGER}k/n: k of n seeds with no ranking; "
              f"{tables.DOUBLE_DAGGER}m: m collapsed at 0.5)",
              tables.metric_wide(summary, spec.metric)),
        Table("curve_fits", "Inverse power law fits and the training size needed",
              tables.curves(curves, answer.size_texts(sizes)), curves),
        Table("summary", "All metrics per arm and fraction", None, summary),
    ])


def _answer_and_fit(sizes: pd.DataFrame) -> str:
    """Why the Answer's training size and the fit's can differ, when a target is set."""
    if sizes.empty:
        return ""
    return (" The Answer's training size for the target is the smallest measured size whose mean meets it; only "
            "where no measured size does is the fitted curve's size used (column 'in the Answer'). So an arm can be "
            "measured to reach the target with no fit (too few sizes), or with a fitted size below the one measured.")


def _seed_counts(summary: pd.DataFrame) -> str:
    """A sentence when arms and fractions hold different numbers of seeds (targeted looks, failed cells)."""
    low, high = int(summary["n_seeds"].min()), int(summary["n_seeds"].max())
    if low == high:
        return ""
    return (f" Arms and fractions hold from {low} to {high} seeds (n_seeds in tables/summary.csv); each "
            "mean, interval and fit uses the seeds its arm and fraction has.")


def _training_curves(done: pd.DataFrame) -> Section:
    history = training_history(done)
    if history.empty:
        return Section("Training curves", ["No training curves: no stored cell has its per-epoch history "
                                           "(history_json; cells stored before it was recorded lack it)."])
    metric = validation_key(history, done)
    caption = (f"Per arm at its largest fraction, one line per seed: mean training loss per epoch (top) and the "
               f"validation value {metric} (bottom); dots: the epoch whose weights were kept (best_epoch)")
    return Section("Training curves", [
        f"Every seed's cell of each arm at the arm's largest fraction with a stored history: the mean training loss "
        f"of each epoch and the validation value {metric} after it; a dot marks the epoch whose weights the cell kept "
        "(best_epoch), which test metrics are measured with. tables/training_curves.csv holds the epochs drawn, with "
        "every validation value and learning rate stored per epoch.",
    ], [
        _figure("training_curves", caption, figures.training_curves(history, metric)),
        Table("training_curves", "Per-epoch training history of the cells drawn (CSV only)", None, history),
    ])


def _pairwise_with_kinds(pairwise: pd.DataFrame, done: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The pairwise table with, per side, how many of the paired cells have no ranking and how many collapsed."""
    columns: dict[str, list[int]] = {f"{kind}_{side}": [] for side in ("a", "b") for kind in KINDS}
    for row in pairwise.itertuples(index=False):
        seeds = paired_values(done, metric, row.arm_a, row.arm_b, row.fraction)["seed"]
        for side, arm in (("a", row.arm_a), ("b", row.arm_b)):
            paired = done[(done["arm"] == arm) & (done["fraction"] == row.fraction) & done["seed"].isin(seeds)]
            for kind in KINDS:
                columns[f"{kind}_{side}"].append(int(paired[kind].sum()))
    return pairwise.assign(**columns)


def _pairwise(pairwise: pd.DataFrame, spec) -> Section:
    if pairwise.empty:
        return Section("Pairwise comparisons", ["One arm only: there are no pairs of arms to compare."])
    return Section("Pairwise comparisons", [
        f"Every pair of arms at each fraction, paired by seed, on {spec.metric}: the mean difference a - b with its "
        "95% percentile bootstrap interval (9999 resamples, fixed seed), the paired t-test and the Wilcoxon "
        "signed-rank "
        "test, each Holm-adjusted over the pairs of its fraction. Degenerate cells are included here and counted "
        f"({tables.DAGGER}k: k pairs involve a cell of that arm with no ranking; {tables.DOUBLE_DAGGER}m: m a "
        "collapsed one).",
        "Both sources of noise: the seed interval leaves out the test set's noise, which every seed shares. Beside "
        "it, a 95% interval of a - b from the paired two-level bootstrap of the pair at that fraction, which "
        "resamples the seeds and, within each seed's cells, the test images (the same images for a and b; "
        f"{TWO_LEVEL_RESAMPLES} replicates per pair, fixed seed), and P(A > B), the probability that a beats b on a "
        "new seed and a new draw of test images (Bouthillier et al. 2021). Recomputed from the stored predictions "
        "for auc, accuracy and balanced_accuracy; '-' for other metrics or without predictions. These are not "
        "corrected for the many pairs.",
    ], [
        Table("pairwise", f"Pairwise tests on {spec.metric}", tables.pairwise(pairwise), pairwise),
        _figure("significance", "Mean paired differences (row - column); stars: Holm-adjusted t-test",
                figures.significance_matrices(pairwise, spec.metric, spec.alpha)),
    ])


def _ranks_with_kinds(ranks: pd.DataFrame, done: pd.DataFrame, spec) -> pd.DataFrame:
    """The ranks table with how many ranked cells have no ranking and how many collapsed: friedman_tables counts
    the `degenerate` cells of the seeds it ranks, so it is run again with `degenerate` standing for each kind."""
    return ranks.assign(**{
        kind: friedman_tables(done.assign(degenerate=done[kind]), spec.metric, spec.alpha)[1]["degenerate"].to_numpy()
        for kind in KINDS})


def _friedman(done: pd.DataFrame, spec) -> Section:
    tests, ranks = friedman_tables(done, spec.metric, spec.alpha)
    ranks = _ranks_with_kinds(ranks, done, spec)
    items: list = [Table("friedman", f"Friedman test across arms on {spec.metric}", tables.friedman(tests), tests)]
    if len(ranks):
        nemenyi = nemenyi_table(tests, ranks)
        items += [
            Table("ranks", "Mean rank per arm (1 = best) over the seeds every arm finished",
                  tables.ranks_wide(ranks, arm_order(done)), ranks),
            Table("nemenyi", "Nemenyi pairs (CSV only)", None, nemenyi),
            _figure("critical_difference", "Critical-difference diagrams (Nemenyi)",
                    figures.critical_difference(tests, ranks)),
        ]
    return Section("Friedman and Nemenyi", [
        "Across all arms at each fraction: the Friedman test over the seeds that every arm finished, then the Nemenyi "
        f"critical difference of mean ranks at alpha = {spec.alpha:g} (studentized range; Demsar 2006). Arms joined "
        "by a bar in the diagram are not told apart. With few seeds the critical difference is large: that is the "
        "honest resolution of the study, not a failure of the test.",
    ], items)


def _mcnemar_with_kinds(frame: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """The McNemar table with, per side, whether its best cell has no ranking and whether it collapsed."""
    for side in ("a", "b"):
        best = frame[[f"arm_{side}", "fraction", f"seed_{side}"]]
        counts = _kind_counts(done, ["arm", "fraction", "seed"], best)
        frame = frame.assign(**{f"{kind}_{side}": [bool(n) for n in counts[kind]] for kind in KINDS})
    return frame


def _mcnemar(protocol: Protocol, done: pd.DataFrame, predictions) -> Section:
    present = [s for s in STRATEGY_NAMES if s in set(done["strategy"])]
    pairs = protocol.report.mcnemar or [(a, b) for i, a in enumerate(present) for b in present[i + 1:]]
    resplit = protocol.dataset.resplit
    frame = _mcnemar_with_kinds(mcnemar_table(done, [(a, b) for a, b in pairs], predictions, same_seed=resplit),
                                done)
    chosen = ("the best pair of cells of one seed by validation score (each seed has its own test set: "
              "dataset.resplit)" if resplit else "the best single cell of each side by validation score")
    return Section("McNemar and DeLong tests of the best cells", [
        f"For each pair of strategies (or arms, report.mcnemar) and fraction, {chosen}; McNemar's exact test on "
        "which test images each got right (matched by image id), and "
        "with two classes DeLong's paired test of the two AUCs on the same images (DeLong et al. 1988, with Sun & "
        "Xu's algorithm); each Holm-adjusted over the fractions of the pair. These compare two single models on "
        "one test set: they count the test set's noise, not the seeds'.",
    ], [Table("mcnemar", "McNemar's exact test and DeLong's AUC test between best cells", tables.mcnemar(frame),
              frame)])


def _heatmaps(summary: pd.DataFrame, done: pd.DataFrame, spec) -> Section | None:
    items: list[Table | Figure | str] = []
    paragraphs: list[str] = []
    family = {arm: STRATEGIES[strategy].family for arm, strategy in zip(done["arm"], done["strategy"])}
    arms = list(summary["arm"].unique())
    depth = [(a, a) for a in arms if family[a] is Family.DEPTH]
    cuts = [(a, a) for a in arms if family[a] is Family.CUT]
    full = STRATEGIES["finetune"].label("all", None, "linear")  # full fine-tuning of the protocol's backbone
    if full in arms and cuts:
        cuts.append((f"full: {full}", full))
    for name, rows, title in (
        ("heatmap_depth", depth, f"fine-tuning depth x fraction: mean {spec.metric} (Tajbakhsh et al.)"),
        ("heatmap_cut", cuts, f"truncation point x fraction: mean {spec.metric} (TTL)"),
    ):
        if len(rows) >= 2:
            items.append(_figure(name, title + "; boxed: best per fraction",
                                 figures.heatmap(summary, rows, spec.metric, title)))
        else:
            paragraphs.append(f"No {name.split('_')[1]} heatmap: the protocol has fewer than two such arms.")
    return Section("Depth and truncation heatmaps", paragraphs, items) if items or paragraphs else None


def _images(protocol: Protocol, done: pd.DataFrame, summary: pd.DataFrame, predictions, features: Path,
            names: list[str]) -> Section:
    spec = protocol.report
    fraction = spec.confusion_fraction or float(done["fraction"].max())
    panels, rows = [], []
    for strategy in [s for s in STRATEGY_NAMES if s in set(done["strategy"])]:
        cell = best_cell(done, [strategy], fraction)
        frame = None if cell is None else predictions(cell["run_id"])
        if cell is None or frame is None:
            continue
        k = len([c for c in frame.columns if c.startswith("prob_")])
        counts = confusion_matrix(frame["label"], frame["predicted"], labels=list(range(k)))
        mark = tables.marks(cell["no_ranking"], cell["collapsed"])
        mark = f" {mark}" if mark else ""
        panels.append((f"{strategy}: {cell['arm']} seed {int(cell['seed'])}{mark}", counts))
        rows += [{"strategy": strategy, "arm": cell["arm"], "seed": int(cell["seed"]), "run_id": cell["run_id"],
                  "true": i, "predicted": j, "true_class": names[i], "predicted_class": names[j], "count": int(n)}
                 for (i, j), n in np.ndenumerate(counts)]
    items: list = []
    paragraphs = [f"Confusion matrices of the best cell of each strategy by validation score at fraction {fraction:g}."]
    if panels:
        items += [_figure("confusion", f"Confusion matrices at fraction {fraction:g}",
                          figures.confusion_matrices(panels, names)),
                  Table("confusion", "Confusion counts (CSV only)", None, pd.DataFrame(rows))]
    else:
        paragraphs.append("No confusion matrix: the stored predictions are missing.")
    items.append(Table("topk", "Top-k accuracy per arm and fraction (top-2 only with 3+ classes)",
                       tables.topk(summary)))
    paragraphs.append(_tsne(protocol, features, items))
    return Section("Images: confusion, top-k, t-SNE", paragraphs, items)


def _tsne(protocol: Protocol, features: Path, items: list) -> str:
    """Add the t-SNE figure to items when the features exist; the sentence that says what happened."""
    if not protocol.report.tsne:
        return "No t-SNE map: turned off (report.tsne: false)."
    if not features.is_file():
        return (f"No t-SNE map: the figure is absent because no backbone features are stored at {features} "
                "(the run writes them when it computes the frozen backbone's features).")
    try:
        embedding = tsne_map(features)
    except FeaturesError as exc:
        return f"No t-SNE map: {exc}."
    which = (f" of the fixed split of split_seed {protocol.dataset.split_seed} (each seed's cells train on a split of "
             "their own: dataset.resplit)" if protocol.dataset.resplit else "")
    mapped = (f"a random {len(embedding.coords)} of the {embedding.n_train} training images"
              if len(embedding.coords) < embedding.n_train else "the training images")
    caption = (f"t-SNE of the frozen backbone's {embedding.n_features}-d pooled features of {mapped}"
               f"{which} (PCA to 50 dimensions, perplexity {embedding.perplexity:.3g}, random state 0)")
    title = f"t-SNE of frozen backbone features ({features.stem}), training images"
    items.append(_figure("tsne", caption, figures.tsne(embedding, title)))
    return f"t-SNE map from {features.name}."


def _cell_lists(done: pd.DataFrame, failed: pd.DataFrame) -> Section:
    items: list[Table | Figure | str] = []
    degenerate = done[done["degenerate"]] if len(done) else done
    if len(degenerate):
        kinds = [tables.degenerate_kind(*flags) for flags in zip(degenerate["no_ranking"], degenerate["collapsed"])]
        columns = ["run_id", "arm", "fraction", "seed", "kind", "max_predicted_share", "majority_rate", "auc",
                   "accuracy", *(["accuracy_op"] if "accuracy_op" in done.columns else [])]
        items.append(Table("degenerate_cells", f"Degenerate cells ({tables.DAGGER} no ranking, "
                                               f"{tables.DOUBLE_DAGGER} collapsed at 0.5)",
                           tables.cells_list(degenerate.assign(kind=kinds), columns)))
    if len(failed):
        failed = failed.sort_values("run_id", kind="mergesort")
        columns = ["run_id", "arm", "fraction", "seed", "error"]
        items.append(Table("failed_cells", "Failed cells", tables.cells_list(failed, columns)))
    paragraphs = [] if items else ["No degenerate and no failed cells."]
    every = pd.concat([done, failed], ignore_index=True) if len(failed) else done
    items.append(Table("cells", "every cell used by the report", None, every[[c for c in CELL_COLUMNS if c in every]]))
    paragraphs.append("tables/cells.csv lists every cell the report uses, one row each, with its test metrics, "
                      "validation value, epochs and training time.")
    return Section("Degenerate and failed cells", paragraphs, items)


def _published(protocol: Protocol, summary: pd.DataFrame) -> Section | None:
    if not references.references_for(protocol):
        return None
    frame = references.comparison(protocol, summary)
    note = ("Published numbers for this dataset (official split, whole training split) beside this run's arms at "
            "fraction 1 (mean ± sd over seeds). They come from other models, input sizes and training budgets, so "
            "they are context, not a test; no claim is decided by them. Published accuracies use the default rule "
            "(the most probable class); accuracy (val. operating point) is this run's test accuracy at the threshold "
            "(two classes) or class-prior correction (3+ classes) chosen on the validation split (accuracy_op).")
    if not (summary["fraction"] == 1.0).any():
        note += " This run has no fraction 1, so only the published rows are shown."
    return Section("Published reference numbers", [note], [Table("published", "published and this run's numbers", frame)])


def _all_metrics(summary: pd.DataFrame, shown: str) -> Section:
    metrics = [metric for metric in METRICS if metric != shown and summary[f"{metric}_mean"].notna().any()]
    items: list[Table | Figure | str] = [
        Table(f"summary_{metric}", f"{metric}: mean [95% CI] over seeds"
              + (", at the operating point chosen on validation" if metric.endswith("_op") else ""),
              tables.metric_wide(summary, metric)) for metric in metrics]
    paragraphs = [f"The other stored test metrics ({shown} is under Learning curves), mean and 95% t interval over "
                  "seeds, clipped to the metric's range."]
    if any(metric.endswith("_op") for metric in metrics):
        paragraphs.append(
            "The *_op metrics are measured at an operating point chosen on the validation split alone: with two "
            "classes the threshold on P(class 1) that maximises Youden's J, with 3+ classes the class-prior "
            "correction p_c * prior_c^t with t chosen for the best balanced accuracy (operating_rule and "
            "operating_point in tables/cells.csv). The other metrics use the default rule, the most probable class.")
    return Section("All metrics", paragraphs, items)
