"""What a protocol costs before it runs: the size of each fraction's training subsets and the time of its cells.

A cell's time (its `train_seconds`) is estimated from stored cells of the same structure where there are any: the
mean over the finished cells (a sum of means is the expected total; medians would miss the slow cells), in any
store of the results directory, with the same arm label, backbone and width, input size, training settings that
set the work (epochs, batch size, min_steps, early stopping, threads, augmentation, batch norm) and number of
training images. Elsewhere it comes from a per-image rate (`rate_seconds`):
an upper bound that assumes every epoch runs, from rates measured on stored cells (docs/benchmarks.md, "Cost before
running").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

import numpy as np

from study.core.vocabulary import CellStatus
from study.data.splits import training_subsets
from study.plan.settings import TrainSettings
from study.protocol.blocks import backbone_info
from study.protocol.strategy_registry import blocks_kept, blocks_trained
from study.training.train import steps_per_epoch

if TYPE_CHECKING:
    from study.data.dataset import Dataset
    from study.plan.cells import Cell
    from study.protocol.schema import Protocol

STORED, RATE = "stored cells", "rate"
SHARE_TOLERANCE = 0.25  # a grouped fraction whose realised share is off by more than this share of it is warned of

# Milliseconds per training image (optimisation steps x batch size), 1 thread, measured as the median over the
# stored BreastMNIST cells (MobileNetV2 at 64 px, AMD EPYC): 3.6 when every block of a pretrained network trains
# (finetune depth all); scratch networks, whose batch norm trains and gets precise BN, 1.6 times that (5.8). An arm
# that trains part of the network pays its share of the blocks (truncate at 3: 1.3 measured, 1.6 by this rule;
# finetune depth 2 on cached features: 0.42 and 0.8), a frozen backbone only its head (0.05).
WHOLE_NETWORK_MS = 3.6
TRAINED_BATCH_NORM = 1.6
HEAD_MS = 0.05
REFERENCE_SIZE = 64
COST_TRAIN = ("epochs", "batch_size", "min_steps", "early_stopping", "threads", "augment", "batchnorm")


@dataclass(frozen=True)
class Subset:
    """One seed's training subset at one fraction: images drawn of the seed's training split, and its groups."""

    fraction: float
    images: int
    train_images: int
    groups: int | None  # None without a group column
    train_groups: int | None

    @property
    def share(self) -> float:
        return self.images / self.train_images

    @property
    def off(self) -> float:
        """How far the realised share is from the asked fraction, relative to it."""
        return abs(self.share / self.fraction - 1)


def subsets(dataset: Dataset, splits: dict[int | None, np.ndarray], protocol: Protocol) -> dict[tuple, Subset]:
    """(fraction, seed) -> the training subset the seed's cells at that fraction train on, drawn as the worker does."""
    found = {}
    for seed in protocol.seed_list():
        train = np.flatnonzero(splits.get(seed, splits.get(None)) == "train")
        groups = None if dataset.groups is None else dataset.groups[train]
        for fraction, rows in training_subsets(dataset.labels[train], groups, protocol.fractions, seed).items():
            counted = (None, None) if groups is None else (len(set(groups[rows])), len(set(groups)))
            found[fraction, seed] = Subset(fraction, len(rows), len(train), *counted)
    return found


def _span(values: Iterable, form: str) -> str:
    """The values' range in form ("27" or "27-29")."""
    values = sorted(set(values))
    return form.format(values[0]) if len(values) == 1 else f"{form.format(values[0])}-{form.format(values[-1])}"


def subset_lines(found: dict[tuple, Subset], fractions: list[float]) -> list[str]:
    """One line per fraction: the asked share, the images drawn and their share of the training split (ranges over
    seeds), and the groups drawn where images have groups."""
    lines = ["n_train per fraction (images drawn of the training split; ranges over seeds):"]
    for fraction in fractions:
        drawn = [subset for (at, _), subset in found.items() if at == fraction]
        share = _span((100 * s.share for s in drawn), "{:.1f}")
        line = (f"  fraction {fraction:g}: {_span((s.images for s in drawn), '{}')} images ({share}% of "
                f"{_span((s.train_images for s in drawn), '{}')})")
        if drawn[0].groups is not None:
            line += (f", {_span((s.groups for s in drawn), '{}')} of {_span((s.train_groups for s in drawn), '{}')} "
                     "groups")
        lines.append(line)
    return lines


def share_warnings(found: dict[tuple, Subset]) -> list[str]:
    """A line per fraction of grouped data whose realised share of the training images differs from the asked one
    by more than SHARE_TOLERANCE of it (at the seed where it differs most)."""
    flagged = [(seed, subset) for (_, seed), subset in found.items()
               if subset.groups is not None and subset.off > SHARE_TOLERANCE]
    worst = {subset.fraction: (seed, subset)  # the seed farthest off (the first such seed) comes last
             for seed, subset in sorted(flagged, key=lambda item: (item[1].off, -item[0]))}
    return [f"warning: fraction {fraction:g} draws {100 * subset.share:.1f}% of the training images in seed {seed} "
            f"({subset.images} of {subset.train_images}, {subset.groups} of {subset.train_groups} groups): whole "
            f"groups are drawn, so its cells train on {'more' if subset.share > fraction else 'fewer'} images than "
            "asked" for fraction, (seed, subset) in sorted(worst.items())]


def cost_key(settings: dict[str, Any], label: str, n_train: int) -> str:
    """What sets a cell's time: its arm, network, input size, training settings and number of training images."""
    backbone, train = settings["backbone"], settings["train"]
    return json.dumps({"arm": label, "backbone": [backbone["name"], backbone.get("width")],
                       "size": settings["dataset"]["size"], "train": {key: train.get(key) for key in COST_TRAIN},
                       "n_train": int(n_train)}, sort_keys=True, default=str)


def stored_seconds(results_dir: Path) -> dict[str, list[float]]:
    """cost_key -> train_seconds of every finished cell stored under results_dir (cells run with their caches)."""
    from study.store.results import ResultStore

    found: dict[str, list[float]] = {}
    folders = sorted(path for path in Path(results_dir).glob("*/cells") if not path.parent.name.startswith("."))
    for folder in folders:
        cells = ResultStore(results_dir, folder.parent.name).cells()
        finished = cells["status"] == CellStatus.DONE
        done = cells[finished & (cells["caches"] != False)]  # noqa: E712 (null: before the column)
        for settings, label, n_train, seconds in zip(done["settings_json"], done["arm"], done["n_train"],
                                                     done["train_seconds"]):
            found.setdefault(cost_key(json.loads(settings), label, n_train), []).append(float(seconds))
    return found


def rate_seconds(settings: dict[str, Any], n_train: int) -> float:
    """A cell's time by the per-image rate: every epoch's steps x batch size x the arm's milliseconds per image."""
    train = settings["train"]
    images = train["epochs"] * steps_per_epoch(n_train, TrainSettings.from_record(train)) * train["batch_size"]
    pixels = (settings["dataset"]["size"] / REFERENCE_SIZE) ** 2
    return images * _ms_per_image(settings) * _backbone_cost(settings["backbone"]) * pixels / 1000


def _ms_per_image(settings: dict[str, Any]) -> float:
    """Milliseconds per training image of MobileNetV2 at 64 px for the arm's share of trained blocks."""
    arm, train = settings["arm"], settings["train"]
    blocks = len(backbone_info(settings["backbone"]["name"]).blocks)
    kept = blocks_kept(arm["truncate_at"], blocks)
    trained = blocks_trained(arm["depth"], kept)
    batch_norm = TRAINED_BATCH_NORM if settings["backbone"]["weights"] == "none" or train["batchnorm"] == "train" else 1
    return max(HEAD_MS, WHOLE_NETWORK_MS * batch_norm * trained / blocks)


def _backbone_cost(backbone: dict[str, Any]) -> float:
    """The network's cost per image relative to MobileNetV2 (its registry entry), in proportion to its width where
    it has one."""
    info = backbone_info(backbone["name"])
    return info.cost * (backbone.get("width") or info.width) / info.width if info.width else info.cost


def estimate(cell: Cell, n_train: int, stored: dict[str, list[float]]) -> tuple[float, str]:
    """A cell's seconds and where the number comes from (STORED or RATE)."""
    settings = cell.settings.as_dict()  # the stored cells' settings_json holds the same record
    seconds = stored.get(cost_key(settings, cell.arm.label, n_train))
    return (fmean(seconds), STORED) if seconds else (rate_seconds(settings, n_train), RATE)


def cell_seconds(cells: list[Cell], sizes: dict[tuple, Subset], stored: dict[str, list[float]]) -> dict[str, float]:
    """run_id -> each cell's estimated seconds (estimate), as `study plan` counts them."""
    return {cell.run_id: estimate(cell, sizes[cell.fraction, cell.seed].images, stored)[0] for cell in cells}


@dataclass
class ArmCost:
    """The estimated seconds of an arm's cells, all of them and those still to run, and their sources."""

    label: str
    cells: int = 0
    seconds: float = 0.0
    todo: int = 0
    todo_seconds: float = 0.0
    sources: dict[str, int] = field(default_factory=dict)  # source -> cells estimated from it

    def add(self, seconds: float, source: str, pending: bool) -> None:
        self.cells += 1
        self.seconds += seconds
        self.todo += pending
        self.todo_seconds += seconds * pending
        self.sources[source] = self.sources.get(source, 0) + 1

    def source_text(self) -> str:
        return ", ".join(f"{source} ({count})" for source, count in self.sources.items())


def arm_costs(cells: list[Cell], sizes: dict[tuple, Subset], stored: dict[str, list[float]],
              pending: set[str]) -> list[ArmCost]:
    """Per arm, in protocol order: the estimated seconds of its cells (those in pending still to run)."""
    arms: dict[str, ArmCost] = {}
    for cell in cells:
        seconds, source = estimate(cell, sizes[cell.fraction, cell.seed].images, stored)
        arms.setdefault(cell.arm.label, ArmCost(cell.arm.label)).add(seconds, source, cell.run_id in pending)
    return list(arms.values())


def cost_lines(arms: list[ArmCost], jobs: int) -> list[str]:
    """The arms' estimates as a table, then the totals, in cell time and in wall time for `jobs` workers."""
    width = max(len(arm.label) for arm in arms)
    lines = [f"estimated time (cell time; {STORED}: the mean of stored cells of the same arm, training settings "
             f"and n_train; {RATE}: the per-image rate, an upper bound with every epoch run):",
             f"  {'arm':<{width}}  cells      time  to run      time  from"]
    for arm in arms:
        lines.append(f"  {arm.label:<{width}}  {arm.cells:>5}  {duration(arm.seconds):>8}  {arm.todo:>6}  "
                     f"{duration(arm.todo_seconds):>8}  {arm.source_text()}")
    total, todo = sum(arm.seconds for arm in arms), sum(arm.todo_seconds for arm in arms)
    lines.append(f"total: {sum(arm.cells for arm in arms)} cells, {duration(total)} of cell time, about "
                 f"{duration(total / jobs)} with {jobs} job(s) (total / jobs); to run: "
                 f"{sum(arm.todo for arm in arms)} cells, {duration(todo)}, about {duration(todo / jobs)}")
    return lines


def duration(seconds: float) -> str:
    """Seconds as '42 s', '3.5 min' or '1.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
