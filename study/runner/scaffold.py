"""`study init`: a commented protocol written for a dataset, from what the data holds and the shipped studies' choices
(protocols/truncation.yaml: MobileNetV2 at 64 px, its training settings, strategies, fractions and claims)."""

from __future__ import annotations

import math
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from study.analysis.claims import MIN_PAIRS
from study.analysis.curves import MIN_SIZES
from study.core.errors import StudyError
from study.data.survey import Survey, survey
from study.protocol import schema
from study.protocol.blocks import BackboneInfo, backbone_info
from study.protocol.fields import literal_values, meaning
from study.protocol.schema import Protocol, parse_protocol
from study.protocol.strategy_registry import STRATEGIES
from study.runner.inputs import seed_splits, training_labels

if TYPE_CHECKING:
    from study.data.dataset import Dataset

BACKBONE = "mobilenetv2"  # the shipped protocols' network: cheap on a CPU at 64 px
SIZE = 64
LADDER = (0.05, 0.1, 0.25, 0.5, 1.0)  # the fractions tried, the shipped truncation study's
SCARCE = 0.25  # the fractions up to this one are the data-poor regime of the claims
SEEDS = 3
SPLIT = {"val_fraction": 0.15, "test_fraction": 0.2, "split_seed": 0, "resplit": False}
TRAIN = {"epochs": 30, "batch_size": 32, "lr": {"backbone": 1.0e-4, "head": 1.0e-3},
         "early_stopping": {"monitor": "val_auc", "patience": 10}}
REPORT = {"metric": "auc", "target": 0.85, "alpha": 0.05}
WIDTH = 118  # of comment lines


@dataclass
class Written:
    """A protocol written for a dataset, and what its writing found worth a warning."""

    text: str
    protocol: Protocol
    found: str  # the data, in words
    facts: str  # images, classes, groups: one line
    warnings: list[str]


def write_protocol(data: str, data_dir: Path | None, cache_dir: Path | None) -> Written:
    """The commented protocol for DATA (a folder, CSV manifest, DICOM folder or MedMNIST name); its images decoded
    once, cached in cache_dir when given."""
    from study.data.sources import load_dataset
    from study.data.splits import ensure_split, fraction_shortfall, split_shortfall

    found = survey(data, data_dir, SIZE)
    section = {key: value for key, value in found.section.items() if value is not None} | {"size": SIZE}
    draft = _draft(found.name, section)
    loaded = load_dataset(draft.dataset, data_dir, cache_dir)
    own_split = loaded.split is not None
    if not own_split:
        section |= SPLIT
        draft = _draft(found.name, section)
    dataset = ensure_split(loaded, draft.dataset)
    splits = seed_splits(dataset, draft)
    unmeasured = split_shortfall(dataset.labels, dataset.class_names, splits, own_split)
    if unmeasured:
        raise StudyError(f"{found.found}: {unmeasured}")
    training = training_labels(dataset, splits)
    names = dataset.class_names
    fractions = [f for f in LADDER if fraction_shortfall(training, names, [f]) is None]
    if not fractions:
        raise StudyError(f"{found.found}: {fraction_shortfall(training, names, [1.0])}")
    lines, warnings = _header(found, dataset, own_split, training, fractions)
    train_counts = _least_per_class(training, len(names))
    lines.append("")
    info = backbone_info(BACKBONE)
    depths, cuts = _depths(info), _cuts(info)
    lines += _top("name", found.name, meaning(Protocol, "name"))
    lines += _top("description", f"transfer-learning strategies against training from scratch on {found.name}",
                  meaning(Protocol, "description"))
    lines += _dataset(section, type(draft.dataset), own_split)
    lines += _backbone(info)
    lines += _strategies(info, depths, cuts)
    fewest = min(train_counts)
    fraction_note = (f"; tried {_listed(LADDER)} (the shipped truncation study's) and kept those that leave every "
                     f"class at least one image in every seed's training split (the smallest class, "
                     f"{names[train_counts.index(fewest)]}, has {fewest} training images)")
    lines += _top("fractions", fractions, meaning(Protocol, "fractions") + fraction_note)
    lines += _top("seeds", SEEDS, meaning(Protocol, "seeds") + f"; a claim's paired t-test needs {MIN_PAIRS} or more")
    lines += _train()
    lines += _report()
    lines += _claims(fractions, depths)
    text = "\n".join(lines) + "\n"
    groups = "no groups" if dataset.groups is None else f"{len(set(dataset.groups))} patients"
    facts = f"{len(dataset)} images, {len(names)} classes, {groups}"
    return Written(text, parse_protocol(text, "<written protocol>"), found.found, facts, warnings)


def _header(found: Survey, dataset: Dataset, own_split: bool, training: dict, fractions: list[float],
            ) -> tuple[list[str], list[str]]:
    """The comments on what the data holds, and the warnings among them: no groups, fewer fractions than a
    learning-curve fit needs."""
    from study.data.splits import fraction_shortfall

    names, warnings = dataset.class_names, []
    counts = [int((dataset.labels == k).sum()) for k in range(len(names))]
    train_counts = _least_per_class(training, len(names))
    lines = [*_comment(f"A protocol for {found.name}, written by `study init` from the {found.found}. Edit it "
                       "freely: `study validate` checks it, `study plan` shows its cost, `study run` runs it."), "#"]
    lines += _comment(f"Classes (images): {_per_class(names, counts)}; {len(dataset)} images. Training split"
                      f"{'' if own_split else ' (seeded, below)'}: {_per_class(names, train_counts)}.")
    if found.group:
        assert dataset.groups is not None  # a source whose groups the survey found loads them
        lines += _comment(f"Groups: {len(set(dataset.groups))} patients ({found.group}); a patient's images all stay "
                          "on one side of every split and subset.")
    else:
        warnings.append(f"no patient ids found: {found.no_group}, so images of one patient may land in both the "
                        "training and the test split")
        lines += _comment(f"WARNING: {warnings[-1]}.")
    lines += _comment(_sizes(found, dataset.source_file))
    if len(fractions) < MIN_SIZES:
        dropped = [f for f in LADDER if f not in fractions]
        shortfall = fraction_shortfall(training, names, [max(dropped)])
        warnings.append(f"only {len(fractions)} of the fractions {_listed(LADDER)} leave every class a training "
                        f"image (dropped {_listed(dropped)}: {shortfall}); a learning-curve fit, and so the images "
                        f"needed for report.target, needs {MIN_SIZES}")
        lines += _comment(f"WARNING: {warnings[-1]}.")
    return lines, warnings


def _least_per_class(training: dict, classes: int) -> list[int]:
    """Each class's training images in the split that has fewest of them."""
    return [min(int((labels == k).sum()) for labels in training.values()) for k in range(classes)]


def _draft(name: str, section: dict) -> Protocol:
    """A protocol of the dataset section alone, for its splits."""
    return Protocol.model_validate({"name": name, "dataset": section, "backbone": {"name": BACKBONE},
                                    "strategies": [{"name": "scratch"}], "fractions": [1.0], "seeds": SEEDS})


def _depths(info: BackboneInfo) -> list:
    """Fine-tuning depths: the top block, the top two, every block."""
    return [1, 2, "all"] if len(info.blocks) > 2 else [1, "all"]


def _cuts(info: BackboneInfo) -> list[int]:
    """Cut points three and five eighths of the way through the blocks (MobileNetV2: 3 and 5 of 0..8, as shipped)."""
    last = len(info.blocks) - 1
    return sorted({math.floor(last * eighths / 8 + 0.5) for eighths in (3, 5)})


def _dataset(section: dict, spec: type, own_split: bool) -> list[str]:
    lines = ["dataset:"]
    sources = ", ".join(literal_values(model.model_fields["source"].annotation)[0]
                        for model in (schema.MedmnistSpec, schema.FolderSpec, schema.CsvSpec, schema.DicomSpec,
                                      schema.SyntheticSpec))
    notes = {"source": f"one of {sources} (`study datasets` describes each)",
             "path": "; read from the data directory (--data-dir or $STUDY_DATA_DIR) when relative"}
    for key, value in section.items():
        text = notes["source"] if key == "source" else meaning(spec, key) + notes.get(key, "")
        lines += _field(key, value, text, 2)
    if own_split:
        lines += _comment("the source's own train/val/test split is used as it is (val_fraction, test_fraction and "
                          "split_seed only carve a part it lacks)", 2)
    return lines


def _backbone(info: BackboneInfo) -> list[str]:
    names = ", ".join(schema.BACKBONES)
    blocks = ", ".join(f"{index} {block.name}" for index, block in enumerate(info.blocks))
    return ["backbone:",
            *_field("name", info.name, f"{meaning(schema.BackboneSpec, 'name')}: {names}. The blocks of {info.name}, "
                    f"which depth and at count: {blocks}", 2),
            *_field("weights", "imagenet", meaning(schema.BackboneSpec, "weights"), 2)]


def _strategies(info: BackboneInfo, depths: list, cuts: list[int]) -> list[str]:
    blocks = info.block_names()
    trained = "; ".join(f"depth {d} trains {_span(blocks[-d:]) if d != 'all' else 'every block'}" for d in depths)
    kept = "; ".join(f"at {at} keeps {_span(blocks[:at + 1])}" for at in cuts)
    lines = _comment(f"{meaning(Protocol, 'strategies')}. Each entry: name ({meaning(schema.StrategySpec, 'name')}); "
                     f"depth ({meaning(schema.StrategySpec, 'depth')}); at ({meaning(schema.StrategySpec, 'at')}); "
                     f"head ({meaning(schema.StrategySpec, 'head')}); lr (its own learning rates).")
    lines.append("strategies:")
    entries: list[tuple[dict[str, Any], str]] = [
        ({"name": "scratch"}, ""), ({"name": "frozen", "head": "linear"}, ""),
        ({"name": "finetune", "depth": depths}, f": {trained}"), ({"name": "truncate", "at": cuts}, f": {kept}"),
    ]
    for entry, note in entries:
        lines += _comment(f"{entry['name']}: {STRATEGIES[entry['name']].meaning}{note}", 2)
        lines.append(f"  - {_flow(entry)}")
    return lines


def _train() -> list[str]:
    lines = ["train:"]
    for key, value in TRAIN.items():
        text = meaning(schema.TrainSpec, key)
        if key == "lr":
            text += f" (backbone: {meaning(schema.LearningRates, 'backbone')}; head: " \
                    f"{meaning(schema.LearningRates, 'head')})"
        if key == "early_stopping":
            text += f" (monitor: {meaning(schema.EarlyStopping, 'monitor')}; patience: " \
                    f"{meaning(schema.EarlyStopping, 'patience')})"
        lines += _field(key, value, text, 2)
    return lines


def _report() -> list[str]:
    lines = ["report:"]
    for key, value in REPORT.items():
        lines += _field(key, value, meaning(schema.ReportSpec, key), 2)
    return lines


def _claims(fractions: list[float], depths: list) -> list[str]:
    """Example claims of the shipped studies, for these fractions and depths."""
    scarce = [f for f in fractions if f <= SCARCE]
    full = f"finetune(depth={depths[-1]})"
    claims: list[dict[str, Any]] = [
        {"id": "transfer-beats-scratch", "text": "Tajbakhsh et al. 2016, claim 1 - a fine-tuned pre-trained CNN "
         "beats one trained from scratch", "a": "finetune", "b": "scratch", "exclude_degenerate": False},
        {"id": "transfer-robust-when-scarce", "text": "Tajbakhsh et al. 2016, claim 2 - fine-tuning is more robust "
         "than scratch to small training sets", "a": "finetune", "b": "scratch", "fractions": scarce,
         "exclude_degenerate": False},
        {"id": "frozen-not-worse-than-finetune", "text": "Cheng & Malhi 2016 - frozen ImageNet features are enough: "
         "fine-tuning gains at most 0.02 AUC", "a": "frozen", "b": "finetune", "kind": "not_worse", "margin": 0.02},
        {"id": "truncated-beats-full", "text": "TTL (Peng, Liang et al.), claim 2 - fine-tuning a truncated network "
         "beats fine-tuning the whole network", "a": "truncate", "b": full},
        {"id": "depth-grows-with-data", "text": "Tajbakhsh et al. 2016, claim 4 - the best fine-tuning depth grows "
         "with the data", "kind": "trend", "a": [f"finetune(depth={d})" for d in depths]},
    ]
    if not scarce or scarce == fractions:
        claims.pop(1)  # no data-poor regime apart from the rest
    lines = _comment(f"{meaning(Protocol, 'claims')}: side a beats side b (kind better), is not worse within a margin "
                     "(not_worse), or the arm validation picks moves along the list a as the fraction grows (trend). A "
                     "strategy name stands for its arm with the best validation metric at each fraction.")
    lines.append("claims:")
    for index, claim in enumerate(claims):
        for number, (key, value) in enumerate(claim.items()):
            text = meaning(schema.ClaimSpec, key) if index == 0 or key in ("kind", "margin") else ""
            lines += _field(key, value, text, 4, "  - " if number == 0 else "    ")
    return lines


def _sizes(found: Survey, source_file: str | None) -> str:
    """The image sizes seen, and whether resizing to SIZE x SIZE stretches them."""
    if not found.sizes:
        return f"Image size: every image is square, as {source_file} holds them; resized to {SIZE} x {SIZE} px."
    widths = [w for (w, _), n in found.sizes.items() for _ in range(n)]
    heights = [h for (_, h), n in found.sizes.items() for _ in range(n)]
    oblong = sum(n for (w, h), n in found.sizes.items() if w != h)
    span = "; ".join(f"{what} {min(values)} / {statistics.median(values):g} / {max(values)}"
                     for what, values in (("width", widths), ("height", heights)))
    stretched = (f"{oblong} of {len(widths)} images are not square: resizing to {SIZE} x {SIZE} px stretches them "
                 "(no crop, no padding)" if oblong else f"Every image is square; resized to {SIZE} x {SIZE} px")
    return f"Image sizes in px (min / median / max): {span}. {stretched}."


def _per_class(names: list[str], counts: list[int]) -> str:
    return ", ".join(f"{name} ({count})" for name, count in zip(names, counts))


def _span(blocks: list[str]) -> str:
    return blocks[0] if len(blocks) == 1 else f"{blocks[0]}..{blocks[-1]}"


def _listed(fractions) -> str:
    return ", ".join(f"{f:g}" for f in fractions)


def _top(key: str, value, text: str) -> list[str]:
    return _field(key, value, text, 0)


def _field(key: str, value, text: str, indent: int, lead: str | None = None) -> list[str]:
    """A key: value line in flow style, under its comment (none for empty text)."""
    return [*(_comment(text, indent) if text else []), f"{' ' * indent if lead is None else lead}{key}: {_flow(value)}"]


def _comment(text: str, indent: int = 0) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=" " * indent + "# ", subsequent_indent=" " * indent + "# ",
                         break_on_hyphens=False)


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).removesuffix(
        "\n").removesuffix("\n...")
