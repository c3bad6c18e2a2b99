"""The words every stage shares, defined once: the test metrics and which way each is better, the state of a cell
and of a tuning trial, what a failure means, and the verdict of a claim. Values are the strings the store and the
report have always held."""

from __future__ import annotations

import enum
import typing

CLASSIFICATION_METRICS = ("accuracy", "auc", "balanced_accuracy", "f1_macro", "top2_accuracy", "log_loss")
OPERATING_METRICS = ("accuracy_op", "balanced_accuracy_op", "f1_macro_op")  # at the rule chosen on validation
ORDINAL_METRICS = ("kappa_quadratic", "mae_class")  # with dataset.ordinal only
METRICS = CLASSIFICATION_METRICS + OPERATING_METRICS + ORDINAL_METRICS  # every stored test metric, in report order
# averages over every class: undefined (NaN) for a test set that lacks a class
MACRO_METRICS = ("auc", "balanced_accuracy", "f1_macro", "balanced_accuracy_op", "f1_macro_op")
LOWER_IS_BETTER = frozenset({"log_loss", "mae_class", "val_loss"})  # metrics and validation monitors
# trained models a run keeps: none, each arm x fraction's best, every cell's
KeepModels = typing.Literal["none", "best", "all"]
KEEP_MODELS: tuple[KeepModels, ...] = typing.get_args(KeepModels)


class Direction(enum.StrEnum):
    """Which way a metric is better."""

    MAXIMIZE = "maximize"  # accuracies, AUC, F1, kappa
    MINIMIZE = "minimize"  # losses and errors (LOWER_IS_BETTER)


def direction(metric: str) -> Direction:
    """minimize for losses and errors, maximize otherwise."""
    return Direction.MINIMIZE if metric in LOWER_IS_BETTER else Direction.MAXIMIZE


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of this metric (or validation monitor) is better."""
    return direction(metric) is Direction.MAXIMIZE


class CellStatus(enum.StrEnum):
    """The state of a cell; the store holds the last two."""

    PENDING = "pending"  # not in the store; will run
    RUNNING = "running"  # dispatched in this sweep; a crash leaves it absent from the store, so it runs again
    DONE = "done"  # stored with metrics; never runs again
    FAILED = "failed"  # stored with its error; runs again only with --retry-failed


class TrialStatus(enum.StrEnum):
    """How a tuning trial ended; the engines count trials by it."""

    COMPLETE = "complete"  # trained to the end (or its early stop): scored by its kept epoch
    PRUNED = "pruned"  # stopped after an epoch because its validation curve lagged behind earlier trials
    FAILED = "failed"  # raised (e.g. the loss diverged) or its worker was lost


class FailureKind(enum.StrEnum):
    """What a failed cell's error means for the sweep (KerasTuner's kinds); the store holds it with the row."""

    RETRYABLE = "retryable"  # an ordinary error (a flaky read, a lost resource): tried again up to run.retries
    DETERMINISTIC = "deterministic"  # the settings fail the same way every time (shape, value, NaN loss): no retry
    FATAL = "fatal"  # the results cannot be written (read-only, no permission, disk full): the sweep stops


class Verdict(enum.StrEnum):
    """The outcome of a claim, overall or at one fraction."""

    SUPPORTED = "supported"  # a beats b (or is not worse within the margin) beyond chance
    CONTRADICTED = "contradicted"  # b beats a beyond chance
    INCONCLUSIVE = "inconclusive"  # too few seeds, or no difference beyond chance
