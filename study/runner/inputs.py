"""What a command needs loaded: the protocol, its store and planned cells, and the dataset checked against it.

The dataset is checked before anything runs: every class of every seed's split must have validation and test images,
and every fraction must draw from every class of its training split. A run stores what it ran on beside its cells: the split of each seed, the dataset's description and the
protocol file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from study.core.atomic_files import writable
from study.plan.cells import Cell, plan_cells, plan_units
from study.plan.tuning_units import TuningUnit
from study.protocol.schema import Protocol, parse_protocol
from study.store.results import ResultStore
from study.store.tuning_choices import current_choices

if TYPE_CHECKING:
    import numpy as np

    from study.analysis.sequential import SequentialRecord
    from study.data.dataset import Dataset
    from study.runner.events import RunEvents


@dataclass
class PlannedStudy:
    """A loaded protocol with its data location, store and planned cells."""

    protocol: Protocol  # with the seeds a run with --until-decided added
    declared: Protocol  # as its file declares it
    protocol_path: Path  # the file, or a name in angle brackets for a protocol built in Python
    protocol_text: str  # its YAML, stored beside the cells
    data_dir: Path | None
    results_dir: Path
    store: ResultStore
    cells: list[Cell]
    report_dir: Path
    fingerprint: str  # the dataset's, as run ids hash it
    units: list[TuningUnit] = field(default_factory=list)  # the searches of a tuned protocol
    record: SequentialRecord | None = None  # the looks of a run with --until-decided

    @property
    def planned_ids(self) -> list[str]:
        """The run ids of the planned cells: what the report, status and claims read from the store."""
        return [cell.run_id for cell in self.cells]


def open_study(protocol: Path | Protocol, results_dir: Path, report_dir: Path, data_dir: str | None,
               events: RunEvents | None = None, stored_fingerprint: bool = False,
               stored_first: bool = False) -> PlannedStudy:
    """The protocol (a file, or one built in Python), planned against its store in results_dir; with
    stored_fingerprint, a dataset
    that cannot be read here is identified by the fingerprint the last run stored (dataset.json), told to events;
    with stored_first, the stored fingerprint is used without reading the data at all (commands that read the store
    alone: they work on any machine, in seconds)."""
    from study.data.sources import resolve_data_dir

    from study.analysis.sequential import record_for

    protocol_path, text = protocol_source(protocol)
    declared = parse_protocol(text, str(protocol_path))
    data = resolve_data_dir(data_dir)
    store = ResultStore(results_dir, declared.name)
    stored = (store.dataset_info() or {}).get("fingerprint") if stored_first else None
    fingerprint = stored or _fingerprint(declared, data, store if stored_fingerprint else None, events)
    stored_record = store.sequential()
    record = record_for(declared, stored_record)
    protocol = with_added_seeds(declared, record, stored_record)
    cells = _planned_cells(protocol, fingerprint, store, record)
    return PlannedStudy(protocol, declared, protocol_path, text, data, results_dir, store, cells,
                        report_dir / protocol.name, fingerprint, plan_units(protocol, fingerprint), record)


def protocol_source(protocol: Path | Protocol) -> tuple[Path, str]:
    """Where a protocol comes from (its file, or `<name>` for one built in Python) and its YAML text."""
    from study.protocol.reading import read_protocol_text
    from study.protocol.schema import protocol_yaml

    if isinstance(protocol, Protocol):
        return Path(f"<{protocol.name}>"), protocol_yaml(protocol)
    return Path(protocol), read_protocol_text(protocol)


def _fingerprint(protocol: Protocol, data_dir: Path | None, store: ResultStore | None,
                 events: RunEvents | None) -> str:
    """The dataset's fingerprint (what run ids hash), read from the data; when the data cannot be read and a store is
    given, the one its last run stored."""
    from study.core.errors import DataError
    from study.data.sources import source_fingerprint

    try:
        return source_fingerprint(protocol.dataset, data_dir)
    except DataError as exc:
        stored = None if store is None else (store.dataset_info() or {}).get("fingerprint")
        if store is None or stored is None:
            raise
        if events is not None:
            events.stored_fingerprint(exc, store.root / "dataset.json")
        return stored


def with_added_seeds(protocol: Protocol, record: SequentialRecord | None, stored: dict | None = None) -> Protocol:
    """The protocol with the seeds a run with --until-decided has added to its store (as it is without one). A
    stored record of the protocol's seeds that plans no longer make (its looks began below 3 seeds) still names
    the seeds it added, so their cells stay planned and never read as another version's."""
    from study.analysis.sequential import MIN_PAIRS, SequentialPlan, with_seeds

    if record and record.seeds_run:
        return with_seeds(protocol, record.plan.seeds(record.seeds_run))
    added = (stored or {}).get("seeds_run") or 0
    if added and (stored or {}).get("plan", {}).get("base_seeds") == protocol.seed_list():
        return with_seeds(protocol, SequentialPlan(protocol.seed_list(), max(added, MIN_PAIRS)).seeds(added))
    return protocol


def replan(planned: PlannedStudy, protocol: Protocol, record: SequentialRecord) -> None:
    """Plan the study's cells again for a protocol with other seeds, as the looks of record target them."""
    planned.protocol, planned.record = protocol, record
    planned.cells = _planned_cells(protocol, planned.fingerprint, planned.store, record)


def _planned_cells(protocol: Protocol, fingerprint: str, store: ResultStore,
                   record: SequentialRecord | None) -> list[Cell]:
    """The protocol's cells, each tuned one with the choice its store holds for the present budget."""
    return targeted(plan_cells(protocol, fingerprint, current_choices(store.tuning_records(), protocol)), record)


def targeted(cells: list[Cell], record: SequentialRecord | None) -> list[Cell]:
    """The cells the looks of a run with --until-decided train: an added seed only where an open claim read."""
    if record is None:
        return cells
    return [cell for cell in cells if record.trains(cell.arm.label, cell.fraction, cell.seed)]


@dataclass
class CheckedData:
    """The protocol's dataset with its fixed split, the split of each seed that trains, and whether the source came
    with a split of its own."""

    dataset: Dataset
    splits: dict[int | None, np.ndarray]  # seed -> split; the one key None for the fixed split
    official: bool


def split_seeds(protocol: Protocol) -> Sequence[int | None]:
    """The seeds whose splits cells (and tuning trials) train on: every seed with dataset.resplit, else None alone."""
    if not protocol.dataset.resplit:
        return [None]
    tuning = [protocol.tuning.seed] if protocol.tuning is not None else []
    return sorted(set(protocol.seed_list()) | set(tuning))


def checked_dataset(protocol: Protocol, protocol_path: Path, data_dir: Path | None,
                    cache_dir: Path | None, text: str | None = None) -> CheckedData:
    """The protocol's dataset, split, after checking that every class of every seed's split has validation and
    test images and that every fraction can draw from every class of its training split (decoded images cached in
    cache_dir, when given); text: the protocol's YAML when it is not the file at protocol_path."""
    from study.data.sources import load_dataset
    from study.data.splits import ensure_split, fraction_shortfall, split_shortfall
    from study.protocol.schema import field_error, resplit_refusal

    spec = protocol.dataset
    loaded = load_dataset(spec, data_dir, cache_dir)
    if spec.resplit and loaded.split is not None:
        raise field_error(protocol_path, ("dataset", "resplit"), resplit_refusal("train/val/test folders"), text)
    dataset = ensure_split(loaded, spec)
    splits = seed_splits(dataset, protocol)
    unmeasured = split_shortfall(dataset.labels, dataset.class_names, splits, loaded.split is not None)
    if unmeasured:
        raise field_error(protocol_path, ("dataset",), unmeasured, text)
    problem = fraction_shortfall(training_labels(dataset, splits), dataset.class_names, protocol.fractions)
    if problem:
        raise field_error(protocol_path, ("fractions",), problem, text)
    return CheckedData(dataset, splits, official=loaded.split is not None)


def seed_splits(dataset: Dataset, protocol: Protocol) -> dict[int | None, np.ndarray]:
    """The split of each seed whose cells train (split_seeds), of a dataset that has its fixed split."""
    from study.data.splits import seed_split

    splits: dict[int | None, np.ndarray] = {}
    for seed in split_seeds(protocol):
        split = seed_split(dataset, protocol.dataset, seed).split
        assert split is not None  # a seed's split is the dataset's fixed one or one made beside it
        splits[seed] = split
    return splits


def training_labels(dataset: Dataset, splits: dict[int | None, np.ndarray]) -> dict[int | None, np.ndarray]:
    """The labels of each split's training images."""
    return {seed: dataset.labels[split == "train"] for seed, split in splits.items()}


def study_data(planned: PlannedStudy) -> CheckedData:
    """The study's dataset, checked, its decoded images cached in the results directory (not cached when the
    results directory cannot be written: `plan` reads a read-only store)."""
    cache = planned.results_dir / ".cache"
    return checked_dataset(planned.protocol, planned.protocol_path, planned.data_dir, cache if writable(cache) else None,
                           planned.protocol_text)


def split_rows(dataset: Dataset, splits: dict[int | None, np.ndarray]) -> pd.DataFrame:
    """split.parquet's rows: one block per seed (seed null for the fixed split), each image with its group."""
    groups = [None] * len(dataset) if dataset.groups is None else dataset.groups.astype(str)
    return pd.concat([pd.DataFrame({
        "seed": pd.array([seed] * len(dataset), dtype="Int64"),
        "image_id": dataset.ids.astype(str),
        "label": dataset.labels,
        "group": pd.array(groups, dtype=object),
        "split": split.astype(str),
    }) for seed, split in splits.items()], ignore_index=True)


def store_inputs(planned: PlannedStudy, data: CheckedData, events: RunEvents) -> None:
    """The split of each seed, the dataset's class names and skipped files, and the protocol, stored beside the
    cells."""
    store = planned.store
    dataset = data.dataset
    store.put_split(split_rows(dataset, data.splits))
    store.put_dataset_info({"fingerprint": dataset.fingerprint, "images": len(dataset),
                            "class_names": list(dataset.class_names),
                            "official_split": data.official, "source_file": dataset.source_file,
                            "skipped_files": len(dataset.skipped), "skipped": list(dataset.skipped)})
    store.put_protocol(planned.protocol_text)
    if dataset.skipped:
        events.skipped_files(len(dataset.skipped), store.root / "dataset.json")


@dataclass
class Validation:
    """A protocol that loaded, and its dataset when it was checked too (None: no data directory to check)."""

    protocol: Protocol
    dataset: Dataset | None


def validate(protocol: Path | Protocol, data_dir: str | None) -> Validation:
    """Check a protocol (a file, or one built in Python); with a data directory (or a source that reads no files),
    also its data, as plan does."""
    from study.data.source_registry import source_class
    from study.data.sources import resolve_data_dir

    protocol_path, text = protocol_source(protocol)
    loaded = parse_protocol(text, str(protocol_path))
    data = resolve_data_dir(data_dir)
    if data is None and source_class(loaded.dataset.source).reads_files:
        return Validation(loaded, None)
    return Validation(loaded, checked_dataset(loaded, protocol_path, data, None, text).dataset)
