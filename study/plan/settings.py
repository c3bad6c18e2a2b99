"""What a cell carries to its worker: frozen, typed settings, and the plain record of them that the run id hashes
and the store keeps (`as_dict`, byte for byte the record `from_record` reads).

A record leaves out what older protocols never had (dataset.resplit and dataset.ordinal when off, arm.lr_output
when unset, `tuned` for a protocol without tuning), so that their run ids stay as they were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Pairs = tuple[tuple[str, Any], ...]  # a frozen mapping


@dataclass(frozen=True, slots=True)
class DatasetSettings:
    """The dataset section that changes a result: the source and its own fields, input size, resize filter, split."""

    source: str
    size: int
    resize: str
    resplit: bool  # each seed draws its own train/val/test split
    ordinal: bool  # the classes are ordered: ordinal metrics are stored too
    details: Pairs  # every other field of the section as the source defines it (name, split fractions...), by name

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DatasetSettings:
        named = {"source", "size", "resize", "resplit", "ordinal"}
        return cls(record["source"], record["size"], record["resize"], record.get("resplit", False),
                   record.get("ordinal", False), tuple(sorted((k, v) for k, v in record.items() if k not in named)))

    def as_dict(self) -> dict[str, Any]:
        record = {"source": self.source, "size": self.size, "resize": self.resize, **dict(self.details)}
        record.update({flag: True for flag in ("resplit", "ordinal") if getattr(self, flag)})
        return record


DEFAULT_SOURCE = "keras"


@dataclass(frozen=True, slots=True)
class BackboneSettings:
    """The network below the head: architecture, initial weights (imagenet, none or a file), width of a cnn."""

    name: str
    weights: str
    width: int | None
    source: str = DEFAULT_SOURCE  # keras, or keras_hub (name: a KerasHub preset or preset folder)

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BackboneSettings:
        return cls(**record)

    def as_dict(self) -> dict[str, Any]:
        """The record; the source only where it is not the default, so records from before it are unchanged."""
        record = asdict(self)
        if record["source"] == DEFAULT_SOURCE:
            del record["source"]
        return record


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """The validation value that picks the kept epoch, and how many epochs without improvement stop training."""

    monitor: str
    patience: int


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """How the network trains (every section field of train: but its learning rates, which the arm carries)."""

    epochs: int
    batch_size: int
    optimizer: str
    weight_decay: float
    class_weight: str
    batchnorm: str
    augment: bool
    early_stopping: EarlyStopping | None
    min_steps: int
    threads: int | None

    @property
    def monitor(self) -> str:
        """The validation value that picks the kept epoch (val_loss without early stopping)."""
        return self.early_stopping.monitor if self.early_stopping else "val_loss"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainSettings:
        stopping = record["early_stopping"]
        return cls(**{**record, "early_stopping": EarlyStopping(**stopping) if stopping else None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HeadSettings:
    """The new head: linear, or an mlp with hidden widths and dropout."""

    kind: Literal["linear", "mlp"]
    units: tuple[int, ...]
    dropout: float


@dataclass(frozen=True, slots=True)
class ArmSettings:
    """The strategy variant: what trains, where the backbone is cut, the head and the learning rates."""

    strategy: str
    depth: str  # number of top blocks that train, or "all"
    truncate_at: int | None
    head: HeadSettings
    lr_backbone: float
    lr_head: float
    lr_output: float | None  # the head's output layer; None: lr_head

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ArmSettings:
        head = record["head"]  # a stored record's units are a JSON list
        return cls(**{"lr_output": None, **record, "head": HeadSettings(head["kind"], tuple(head["units"]),
                                                                        head["dropout"])})

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.lr_output is None:
            del record["lr_output"]
        return record


@dataclass(frozen=True, slots=True)
class TunedValues:
    """The values a tuned cell trained with and where they came from."""

    engine: str
    scope: str
    trials: int
    fraction: float
    metric: str
    values: Pairs  # parameter name -> chosen value (learning rates, dropout, weight decay, epochs)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TunedValues:
        return cls(record["engine"], record["scope"], record["trials"], record["fraction"], record["metric"],
                   tuple(record["values"].items()))

    def chosen(self) -> dict[str, Any]:
        """The chosen values by parameter name."""
        return dict(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "values": self.chosen()}


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What a backbone's outputs for every image depend on: the backbone and the dataset (its size and filter)."""

    dataset: DatasetSettings
    backbone: BackboneSettings


@dataclass(frozen=True, slots=True)
class CellSettings:
    """Everything besides fraction and seed that changes a cell's result."""

    dataset: DatasetSettings
    backbone: BackboneSettings
    train: TrainSettings
    arm: ArmSettings
    tuned: TunedValues | None = None  # the chosen values of a tuned protocol's cell
    awaiting_tuning: bool = False  # a tuned protocol's cell whose values are not chosen yet

    @property
    def network(self) -> NetworkSettings:
        return NetworkSettings(self.dataset, self.backbone)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CellSettings:
        tuned = record.get("tuned")
        return cls(DatasetSettings.from_record(record["dataset"]), BackboneSettings.from_record(record["backbone"]),
                   TrainSettings.from_record(record["train"]), ArmSettings.from_record(record["arm"]),
                   TunedValues.from_record(tuned) if tuned else None, "tuned" in record and tuned is None)

    def as_dict(self) -> dict[str, Any]:
        """The record the run id hashes and the store keeps as settings_json."""
        record: dict[str, Any] = {"dataset": self.dataset.as_dict(), "backbone": self.backbone.as_dict(),
                  "train": self.train.as_dict(), "arm": self.arm.as_dict()}
        if self.tuned is not None or self.awaiting_tuning:
            record["tuned"] = self.tuned.as_dict() if self.tuned else None
        return record
