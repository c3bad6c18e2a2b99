"""Protocol files: parse YAML, validate with pydantic, report errors by file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from study.core.errors import ProtocolError
from study.core.vocabulary import KeepModels
from study.data.medmnist_table import FLAGS as MEDMNIST_FLAGS
from study.protocol.arms import as_list, expand_arms
from study.protocol.blocks import BACKBONES, backbone_info
from study.protocol.hub_presets import KNOWN_PRESETS, is_hub_preset
from study.protocol.radimagenet import RADIMAGENET, RADIMAGENET_FILES
from study.protocol.messages import (
    FieldError,
    did_you_mean,
    located_error,
    validation_error,
)
from study.protocol.reading import parse_yaml, read_protocol_text
from study.protocol.strategy_registry import FIELDS, STRATEGIES, StrategyName


class Strict(BaseModel):
    """Base for every protocol section: unknown keys are errors, and values are not coerced (pydantic's strict
    mode): `size: "32"`, `seeds: "2"` and `augment: "yes"` are refused, not read as 32, 2 and True. An integer is
    still a number where a float is asked for, and a YAML list is a sequence where a tuple is (`Sequence`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _tuple_of_list(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


Sequence = BeforeValidator(_tuple_of_list)  # YAML has lists only: a list where a fixed-length tuple is asked for


# ----------------------------------------------------------------------------------------------- dataset
class DatasetBase(Strict):
    size: int = Field(64, ge=16, le=1024, description="images are resized to size x size pixels")
    resize: Literal["bilinear", "bicubic", "lanczos", "nearest", "box", "hamming"] = Field(
        "bilinear", description="the resampling filter that brings every image to size x size (Pillow's)"
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="validation share when the source has no split")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="test share when the source has no split")
    split_seed: int = Field(0, ge=0, description="seed of the train/val/test split when the source has none")
    resplit: bool = Field(
        False, description="each seed gets a train/val/test split of its own (only for a source without a split)"
    )
    ordinal: bool = Field(
        False, description="the classes are ordered grades: add quadratic-weighted kappa and the mean absolute error "
        "of the predicted class to every cell"
    )
    on_bad_file: Literal["fail", "skip"] = Field(
        "fail", description="an unreadable image or a missing listed file fails the run, or is skipped and counted"
    )


class MedmnistSpec(DatasetBase):
    source: Literal["medmnist"] = Field(description="a 2D MedMNIST v2 dataset, with its official train/val/test split")
    name: str = Field(description="MedMNIST flag, e.g. breastmnist; dataset.size picks <name>.npz or <name>_<px>.npz")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        key = value.lower()
        if key not in MEDMNIST_FLAGS:
            raise ValueError(f"expected one of the 2D MedMNIST datasets {sorted(MEDMNIST_FLAGS)}, got "
                             f"{value!r}{did_you_mean(key, MEDMNIST_FLAGS)}")
        if MEDMNIST_FLAGS[key].multi_label:
            raise ValueError(f"expected a single-label dataset; {key} is multi-label, which study does not handle")
        return key


class FolderSpec(DatasetBase):
    source: Literal["folder"] = Field(description="a folder of images, one subfolder per class")
    path: str = Field(description="folder of class subfolders (optionally under train/val/test folders), relative to "
                      "the data directory")


class CsvSpec(DatasetBase):
    source: Literal["csv"] = Field(description="a CSV manifest of image paths and labels")
    path: str = Field(description="CSV manifest, relative to the data directory; image paths are relative to the "
                      "CSV's folder")
    path_column: str = Field("path", description="the column of image paths, relative to the CSV's folder")
    label_column: str = Field("label", description="the column of labels (names or integers; read as text, spaces "
                              "trimmed; 1 beside 1.0 or 01 is an error)")
    group_column: str | None = Field(
        None, description="patient or study column: a group stays on one side of every split and subset"
    )
    split_column: str | None = Field(None, description="column of train, val or test: the source's own split")


class DicomSpec(DatasetBase):
    source: Literal["dicom"] = Field(description="single-frame DICOM files, read with pydicom")
    path: str = Field(description="folder of class subfolders of DICOM files, or a CSV manifest (a path ending .csv), "
                      "relative to the data directory")
    path_column: str = Field("path", description="manifest: the column of DICOM paths, relative to the CSV's folder")
    label_column: str = Field("label", description="manifest: the column of labels, read as for csv")
    group_by: Literal["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "none"] = Field(
        "PatientID", description="the header tag whose value groups images: a group never crosses a split"
    )


class SyntheticSpec(DatasetBase):
    source: Literal["synthetic"] = Field(description="generated images (oriented stripes under noise), no files")
    classes: int = Field(2, ge=2, le=20, description="number of classes")
    per_class: int = Field(60, ge=4, le=5000, description="images per class")
    channels: Literal[1, 3] = Field(1, description="grey (1) or RGB (3) images")
    noise: float = Field(0.35, ge=0, le=2, description="noise level, relative to the pattern's contrast")


DatasetSpec = Annotated[Union[MedmnistSpec, FolderSpec, CsvSpec, DicomSpec, SyntheticSpec],
                        Field(discriminator="source")]


# ---------------------------------------------------------------------------------------------- backbone
class BackboneSpec(Strict):
    name: str = Field(description="architecture from the block maps (study plan prints them); with source "
                      "keras_hub, a KerasHub preset or a local preset folder")
    weights: str = Field(
        "imagenet", description="imagenet, radimagenet (RadImageNet's file for the backbone, in Keras' models folder), "
        "none, or a path to a Keras weights file; with source keras_hub, preset (the preset's own weights, the default "
        "there) or none"
    )
    width: int | None = Field(
        None, ge=4, le=256, description="cnn only: channels of its first stage, doubling per stage (null: 32)"
    )
    source: Literal["keras", "keras_hub"] = Field(
        "keras", description="keras: keras.applications and the built-in cnn; keras_hub: a KerasHub image encoder"
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_weights_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("source") == "keras_hub" and "weights" not in data:
            return {**data, "weights": "preset"}
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        key = value.lower()
        if key in BACKBONES:
            return key
        if is_hub_preset(value):
            return value
        raise ValueError(f"expected one of {sorted(BACKBONES)}, got {value!r}{did_you_mean(key, BACKBONES)}")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value.lower() in {"imagenet", RADIMAGENET, "none", "preset"}:
            return value.lower()
        if not Path(value).expanduser().is_file():
            raise ValueError(f"expected imagenet, none, or the path of a weights file; no file at {value!r}")
        return value

    @model_validator(mode="after")
    def _source_and_weights_fit(self) -> BackboneSpec:
        hub = self.source == "keras_hub"
        if hub != (self.name not in BACKBONES):
            raise ValueError(f"{self.name} is a KerasHub preset: add source: keras_hub" if not hub else
                             f"{self.name} is not a KerasHub preset (one of {', '.join(sorted(KNOWN_PRESETS))} "
                             "or a folder with a config.json)")
        if hub and self.weights not in {"preset", "none"}:
            raise ValueError(f"a KerasHub backbone takes weights preset or none, got {self.weights!r}")
        if not hub and self.weights == "preset":
            raise ValueError("weights preset needs source: keras_hub")
        if hub and self.width is not None:
            raise ValueError("width applies only to the cnn backbone")
        if self.weights == RADIMAGENET and self.name not in RADIMAGENET_FILES:
            raise ValueError(f"RadImageNet weights exist for {', '.join(sorted(RADIMAGENET_FILES))} only, "
                             f"not for {self.name}")
        return self


# -------------------------------------------------------------------------------------------- strategies
Depth = int | Literal["all"]


class HeadSpec(Strict):
    kind: Literal["linear", "mlp"] = Field(
        "linear", description="linear: the output layer alone; mlp: hidden dense layers with ReLU, then the output "
        "layer"
    )
    units: Annotated[tuple[int, ...], Sequence] = Field((256,), description="hidden layer widths of an mlp head")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout after each hidden layer of an mlp head")


class StrategySpec(Strict):
    name: StrategyName = Field(description="what trains: the network from scratch, a head on the frozen "
                               "backbone, the top blocks (finetune), or a cut backbone (truncate)")
    depth: Depth | list[Depth] | None = Field(None, description="top blocks that train (finetune, truncate)")
    at: int | list[int] | None = Field(None, description="block after which the backbone is cut (truncate)")
    head: Literal["linear", "mlp"] | HeadSpec = Field(
        "linear", description="the new head: linear, mlp, or its settings"
    )
    lr: LearningRates | None = Field(None, description="this strategy's learning rates (default: train.lr)")
    backbone: BackboneSpec | None = Field(None, description="this strategy's own network (default: the protocol's)")

    @model_validator(mode="after")
    def _fields_fit_strategy(self) -> StrategySpec:
        entry = STRATEGIES[self.name]
        for field, meaning in entry.needs.items():
            if getattr(self, field) is None:
                raise ValueError(f"{self.name} needs {field}: {meaning}")
        for field in FIELDS:
            refusal = entry.refusal(field)
            if refusal and getattr(self, field) is not None:
                raise ValueError(refusal)
        for value in as_list(self.depth):
            if isinstance(value, int) and value < 0:
                raise ValueError(f"depth must be 0 or more, got {value}")
        for value in as_list(self.at):
            if value < 0:
                raise ValueError(f"at must be 0 or more, got {value}")
        return self

    def backbone_spec(self, default: BackboneSpec) -> BackboneSpec:
        return self.backbone or default

    def head_spec(self) -> HeadSpec:
        return HeadSpec(kind=self.head) if isinstance(self.head, str) else self.head


# -------------------------------------------------------------------------------------------- training
class LearningRates(Strict):
    backbone: float = Field(1e-4, gt=0, le=1, description="the pretrained blocks that train")
    head: float = Field(1e-3, gt=0, le=1, description="the new head, and every layer of a network trained from scratch")
    output: float | None = Field(None, gt=0, le=1, description="the head's output layer (default: head)")


StrategySpec.model_rebuild()


class EarlyStopping(Strict):
    monitor: Literal["val_auc", "val_loss", "val_accuracy", "val_balanced_accuracy"] = Field(
        "val_auc", description="validation metric whose best epoch's weights are kept"
    )
    patience: int = Field(5, ge=1, description="epochs without improvement before training stops")


class TrainSpec(Strict):
    epochs: int = Field(30, ge=1, le=10000, description="maximum epochs")
    batch_size: int = Field(32, ge=1, le=4096, description="images per optimisation step")
    lr: LearningRates = Field(LearningRates(), description="learning rates of the pretrained part and of the new head")
    optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="adam (AdamW with weight_decay) or sgd (momentum 0.9)"
    )
    weight_decay: float = Field(0.0, ge=0, description="weight decay (0: none)")
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="balanced weighs the loss by inverse class frequency"
    )
    batchnorm: Literal["frozen", "train"] = Field(
        "frozen", description="pretrained batch norm: frozen keeps inference mode even in blocks that train"
    )
    augment: bool = Field(False, description="random horizontal flips and small shifts of training images")
    early_stopping: EarlyStopping | None = Field(
        EarlyStopping(), description="on the validation split, keeping the best epoch's weights; null: train every "
        "epoch and keep the best by validation loss"
    )
    min_steps: int = Field(
        500, ge=0, le=1_000_000,
        description="optimisation steps every cell gets at least: small subsets take several passes per epoch",
    )
    threads: int = Field(
        1, ge=1, le=256, description="TensorFlow threads of each cell (results depend on it, so run ids do too)"
    )


class RunSpec(Strict):
    """How a sweep treats failing cells and which trained models it keeps; like the report options, never part of a
    run id."""

    retries: int = Field(1, ge=0, le=10, description="extra attempts of a cell that fails with an ordinary error")
    max_consecutive_failures: int | None = Field(
        5, ge=1, description="stop the sweep after this many failed cells in a row (null: never stop)"
    )
    keep_models: KeepModels = Field(
        "none", description="trained models kept in results/<name>/models/: none, each arm x fraction's best by "
        "validation, or all (--keep-models overrides it)"
    )


# -------------------------------------------------------------------------------------------- tuning
class OrderedRange(Strict):
    """Base of the search ranges: low must lie below high."""

    if TYPE_CHECKING:  # each range declares its own bounds as fields
        low: float
        high: float

    @model_validator(mode="after")
    def _ordered(self) -> OrderedRange:
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got low {self.low:g} and high {self.high:g}")
        return self


class LogRange(OrderedRange):
    """A log-uniform search range."""

    low: float = Field(gt=0, description="smallest value tried")
    high: float = Field(gt=0, le=10, description="largest value tried")


class DropoutRange(OrderedRange):
    """A uniform range of the mlp head's dropout."""

    low: float = Field(ge=0, lt=1, description="smallest dropout tried")
    high: float = Field(ge=0, lt=1, description="largest dropout tried")


class EpochRange(OrderedRange):
    """A range of whole epoch counts (uniform)."""

    low: int = Field(ge=1, le=10000, description="fewest epochs tried")
    high: int = Field(ge=1, le=10000, description="most epochs tried")


class SearchSpace(Strict):
    """What tuning searches; a strategy searches only the values it uses (no backbone rate for scratch or frozen)."""

    lr_head: LogRange = Field(LogRange(low=1e-4, high=3e-2), description="head learning rate (log-uniform)")
    lr_backbone: LogRange = Field(LogRange(low=1e-6, high=1e-3), description="backbone learning rate (log-uniform)")
    backbone_ratio: float | None = Field(
        None, gt=0, le=1, description="tie the backbone rate to head rate x ratio (TTL: 0.1) instead of searching it"
    )
    weight_decay: LogRange | None = Field(None, description="weight decay (log-uniform); default: not tuned")
    dropout: DropoutRange | None = Field(None, description="dropout of mlp heads; default: not tuned")
    epochs: EpochRange | None = Field(None, description="maximum epochs; default: not tuned")


class PrunerSpec(Strict):
    """Optuna's median pruner: stop a trial whose validation value falls below the median of earlier trials."""

    kind: Literal["median", "none"] = Field("median", description="none: no pruning")
    startup_trials: int = Field(3, ge=0, description="finished trials before any trial is pruned")
    warmup_epochs: int = Field(1, ge=0, description="epochs every trial runs before it may be pruned")


TuningMetric = Literal["val_auc", "val_loss", "val_accuracy", "val_balanced_accuracy"]


class TuningSpec(Strict):
    """Per-strategy hyperparameter search on the validation split; the chosen values replace the protocol's."""

    engine: Literal["optuna", "keras_tuner"] = Field(
        "optuna", description="Optuna (TPE sampler, pruning) or KerasTuner (Bayesian optimisation, no pruning)"
    )
    trials: int = Field(8, ge=1, le=1000, description="trials per tuned arm (the same budget for every arm)")
    metric: TuningMetric | None = Field(None, description="validation metric; default train.early_stopping.monitor")
    scope: Literal["once", "per_fraction"] = Field(
        "once", description="once: tune each arm at `fraction` and reuse; per_fraction: tune each arm x fraction"
    )
    fraction: float | None = Field(None, gt=0, le=1, description="scope once: the fraction tuned at (default largest)")
    seed: int = Field(0, ge=0, description="seed of the tuning subset, initialisation and sampler")
    space: SearchSpace = Field(SearchSpace(), description="the ranges searched")
    pruner: PrunerSpec = Field(PrunerSpec(), description="when Optuna stops a trial early")

    @model_validator(mode="after")
    def _fraction_fits_scope(self) -> TuningSpec:
        if self.scope == "per_fraction" and self.fraction is not None:
            raise ValueError("fraction is only for scope: once (per_fraction tunes at every fraction)")
        return self


# ------------------------------------------------------------------------------------- report and claims
CurveMetric = Literal["auc", "accuracy", "balanced_accuracy", "f1_macro", "top2_accuracy", "accuracy_op",
                      "balanced_accuracy_op", "f1_macro_op"]
ClaimMetric = Literal["auc", "accuracy", "balanced_accuracy", "f1_macro", "top2_accuracy", "log_loss", "accuracy_op",
                      "balanced_accuracy_op", "f1_macro_op", "kappa_quadratic", "mae_class"]
Side = str | list[str]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ReportSpec(Strict):
    """Options of the report; they never change run ids."""

    metric: CurveMetric = Field("auc", description="metric of the learning curves, tests, rankings and heatmaps")
    target: float | None = Field(None, gt=0, le=1, description="metric value whose training size the curves estimate")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of tests and claims")
    exclude_degenerate: bool = Field(True, description="leave degenerate cells out of claims")
    mcnemar: list[Annotated[tuple[str, str], Sequence]] | None = Field(
        None, description="pairs of strategies or arms whose best cells McNemar compares; default every pair"
    )
    confusion_fraction: float | None = Field(None, description="fraction of the confusion matrices (default largest)")
    tsne: bool = Field(True, description="draw the t-SNE map of the stored backbone features")


class ClaimSpec(Strict):
    """One claim: side a is better than side b (or not worse within a margin) on a metric at some fractions; or, for
    kind trend, the arm of the ordered list a that validation picks moves along the list as the fraction grows."""

    id: str = Field(pattern=_NAME, description="short name of the claim")
    text: str = Field("", description="the claim in words, with its source")
    a: Side = Field(description="an arm label, a strategy name, or a list of them; trend: arm labels in order")
    b: Side | None = Field(None, description="an arm label, a strategy name, or a list of them (not for trend)")
    kind: Literal["better", "not_worse", "trend"] = Field(
        "better", description="better; not_worse (needs margin > 0); trend (a lists arms in order, no b)"
    )
    margin: float = Field(0.0, ge=0, lt=1, description="not_worse: how much worse a may be")
    metric: ClaimMetric | None = Field(None, description="default report.metric")
    fractions: Literal["all"] | list[float] = Field("all", description="all, or a list of the protocol's fractions")
    alpha: float | None = Field(None, gt=0, lt=0.5, description="default report.alpha")
    exclude_degenerate: bool | None = Field(None, description="default report.exclude_degenerate")

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> ClaimSpec:
        if self.kind != "not_worse" and self.margin:
            raise ValueError("margin is only for kind: not_worse")
        if self.kind == "not_worse" and not self.margin:
            raise ValueError("not_worse needs a margin > 0 (with margin 0 it is the better claim)")
        if self.kind == "trend":
            if self.b is not None:
                raise ValueError("a trend claim has no b: a lists the arms in order (e.g. shallow to deep)")
            if len(self.side("a")) < 2:
                raise ValueError("a trend claim needs a list of at least 2 arms in a")
        elif self.b is None:
            raise ValueError(f"a {self.kind} claim needs b: an arm label, a strategy name, or a list of them")
        return self

    def side(self, which: str) -> list[str]:
        value = getattr(self, which)
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)


# -------------------------------------------------------------------------------------------- protocol
class Protocol(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="results go to <results dir>/<name>/")
    description: str = Field("", description="free text, shown in the report title")
    dataset: DatasetSpec = Field(description="the images and their labels, by source")
    backbone: BackboneSpec = Field(description="the network of every strategy that names none of its own")
    strategies: list[StrategySpec] = Field(
        min_length=1, description="how the network trains; a list in depth or at gives one arm per value"
    )
    fractions: list[Annotated[float, Field(gt=0, le=1)]] = Field(min_length=1, description="shares of the training split")
    seeds: int | list[int] = Field(3, description="a count (seeds 0..n-1) or an explicit list")
    train: TrainSpec = Field(TrainSpec(), description="how every cell trains")
    run: RunSpec = Field(RunSpec(), description="failing cells and kept models; never part of a run id")
    tuning: TuningSpec | None = Field(None, description="tune learning rates (and more) per arm on validation")
    report: ReportSpec = Field(ReportSpec(), description="options of the report; never part of a run id")
    claims: list[ClaimSpec] = Field(default_factory=list, description="claims the report tests")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if len(set(values)) != len(values):
            raise ValueError("fractions must not repeat")
        return sorted(values)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"seeds must be at least 1, got {value}")
        if isinstance(value, list) and (not value or len(set(value)) != len(value) or min(value) < 0):
            raise ValueError("a seed list must be non-empty, without repeats, and of non-negative numbers")
        return value

    @model_validator(mode="after")
    def _cut_points_exist(self) -> Protocol:
        for index, strategy in enumerate(self.strategies):
            name = strategy.backbone_spec(self.backbone).name
            blocks = backbone_info(name).blocks
            last = len(blocks) - 1
            for at in as_list(strategy.at):
                if at > last:
                    raise FieldError(
                        ("strategies", index, "at"),
                        f"{name} has blocks 0..{last} ({', '.join(b.name for b in blocks)}), got {at}",
                    )
            for depth in as_list(strategy.depth):
                if isinstance(depth, int) and depth > len(blocks):
                    raise FieldError(
                        ("strategies", index, "depth"),
                        f"{name} has {len(blocks)} blocks, got depth {depth}; use all for every block",
                    )
        return self

    @model_validator(mode="after")
    def _report_names_exist(self) -> Protocol:
        labels = [arm.label for strategy in self.strategies for arm in expand_arms(strategy, self)]
        names = list(dict.fromkeys([strategy.name for strategy in self.strategies] + labels))
        fractions = set(self.fractions)
        ids = [claim.id for claim in self.claims]
        for index, claim in enumerate(self.claims):
            if claim.id in ids[:index]:
                raise FieldError(("claims", index, "id"), f"claim ids must be unique, {claim.id!r} repeats")
            for which in ("a",) if claim.kind == "trend" else ("a", "b"):
                if not claim.side(which):
                    raise FieldError(("claims", index, which),
                                      "expected an arm, a strategy, or a non-empty list of them")
                for name in claim.side(which):
                    if name not in names:
                        raise FieldError(("claims", index, which), _unknown_name(name, names))
                    if claim.kind == "trend" and name not in labels:
                        raise FieldError(("claims", index, which),
                                          f"a trend claim lists arms, not strategies; expected one of {labels}, got {name!r}")
            if set(claim.side("a")) & set(claim.side("b")):
                raise FieldError(("claims", index, "b"), "a and b must not share an arm or strategy")
            for fraction in [] if claim.fractions == "all" else claim.fractions:
                if fraction not in fractions:
                    raise FieldError(("claims", index, "fractions"),
                                      f"expected fractions of {self.fractions}, got {fraction}")
        for index, pair in enumerate(self.report.mcnemar or []):
            for name in pair:
                if name not in names:
                    raise FieldError(("report", "mcnemar", index), _unknown_name(name, names))
        if self.report.confusion_fraction is not None and self.report.confusion_fraction not in fractions:
            raise FieldError(("report", "confusion_fraction"),
                              f"expected one of the fractions {self.fractions}, got {self.report.confusion_fraction}")
        return self

    @model_validator(mode="after")
    def _resplit_needs_no_source_split(self) -> Protocol:
        dataset = self.dataset
        if dataset.resplit and dataset.source == "medmnist":
            raise FieldError(("dataset", "resplit"), resplit_refusal("medmnist's official split"))
        if dataset.resplit and dataset.source == "csv" and dataset.split_column is not None:
            raise FieldError(("dataset", "resplit"), resplit_refusal(f"the CSV's {dataset.split_column!r} column"))
        return self

    @model_validator(mode="after")
    def _tuning_fraction_exists(self) -> Protocol:
        tuning = self.tuning
        if tuning is not None and tuning.fraction is not None and tuning.fraction not in self.fractions:
            raise FieldError(("tuning", "fraction"), f"expected one of the fractions {self.fractions}, got {tuning.fraction}")
        return self

    def tuning_metric(self) -> str:
        """The validation metric tuning optimises (the early-stopping monitor unless tuning names one)."""
        if self.tuning is not None and self.tuning.metric is not None:
            return self.tuning.metric
        return self.train.early_stopping.monitor if self.train.early_stopping else "val_loss"

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def tuning_spec(self) -> TuningSpec:
        """The tuning section, for the steps that run only when the protocol tunes."""
        if self.tuning is None:
            raise ValueError(f"protocol {self.name!r} has no tuning section")
        return self.tuning


# ------------------------------------------------------------------------------------------- loading
def resplit_refusal(own_split: str) -> str:
    """The error of dataset.resplit on a source that has its own split (named by own_split)."""
    return f"expected false: the source has its own train/val/test split ({own_split}), which stays fixed; got true"


def _unknown_name(name: str, names: list[str]) -> str:
    return f"expected a strategy or arm of this protocol, one of {names}, got {name!r}{did_you_mean(name, names)}"


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file; raise ProtocolError naming file, line and field."""
    return parse_protocol(read_protocol_text(path), str(path))


def parse_protocol(text: str, filename: str = "<protocol>") -> Protocol:
    """Validate protocol text; filename only appears in error messages."""
    node, data = parse_yaml(text, filename)
    if not isinstance(data, dict):
        raise ProtocolError(f"{filename}:1: a protocol is a mapping of fields (name, dataset, ...), got {type(data).__name__}")
    assert node is not None  # a mapping is loaded from the node it was composed as
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, data, node, filename, Protocol) from None


def protocol_yaml(protocol: Protocol) -> str:
    """A protocol as YAML text that loads back equal to it: the fields that were set, defaults left out."""
    return yaml.safe_dump(protocol.model_dump(mode="json", exclude_unset=True, warnings=False), sort_keys=False)


def field_error(path: str | Path, loc: tuple, message: str, text: str | None = None) -> ProtocolError:
    """A ProtocolError in the FILE:LINE: field: message template, for checks that need more than the file; text:
    the protocol's YAML when it is not the file at path (a protocol built in Python)."""
    source = read_protocol_text(path) if text is None else text
    node = parse_yaml(source, str(path))[0]
    assert node is not None  # the text of a protocol that validated is a mapping, never empty
    return located_error(str(path), node, loc, message)


