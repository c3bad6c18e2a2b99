"""The strategies a protocol can name, declared once: the fields each takes, how its arms are labelled and ordered
in tables, which learning rates tuning searches for it, and which report heatmap shows it.

`depth` and `at` count blocks of the backbone's block map (study.protocol.blocks): at cuts after block `at`, depth
trains the top `depth` blocks of what is kept ("all": every one)."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal


class Family(enum.StrEnum):
    """The report heatmap that shows a strategy's arms."""

    DEPTH = "depth"  # fine-tuning depth x fraction (Tajbakhsh et al.)
    CUT = "cut"  # truncation point x fraction (TTL)


# what a field that a strategy does not take is told, by field
_REFUSALS = {
    "at": "at is only for {takers}, not {name}",
    "depth": "depth is not for {name} ({name} fixes what trains)",
}


@dataclass(frozen=True)
class Strategy:
    """One way of using the pretrained network (docs: design, Vocabulary)."""

    name: str
    meaning: str  # what trains, in words (the README's strategies table)
    needs: dict[str, str]  # protocol fields it must have, each with what it means
    takes: frozenset[str]  # protocol fields it may have (depth, at)
    depth: str | None  # the depth of every arm (None: from the protocol's depth; truncate without depth: all)
    pretrained: bool  # starts from the backbone's weights (scratch: random initialisation)
    searched_rates: tuple[str, ...]  # the learning rates a tuning search offers
    sorted_by: str | None  # the arm field that orders its arms in tables (depth or truncate_at)
    family: Family | None  # its report heatmap
    labelled: Callable[[str, str, int | None, str], str]  # its arm label from name, depth, truncate_at, head kind

    def refusal(self, field: str) -> str | None:
        """The error for a protocol field set on this strategy, or None when it takes it."""
        if field in self.takes:
            return None
        takers = ", ".join(s.name for s in STRATEGIES.values() if field in s.takes)
        return _REFUSALS[field].format(name=self.name, takers=takers)

    def label(self, depth: str, truncate_at: int | None, head: str) -> str:
        """The arm label without its backbone tag, e.g. finetune(depth=2), truncate(at=3,depth=1), frozen(mlp)."""
        return self.labelled(self.name, depth, truncate_at, head)

    @property
    def rank(self) -> int:
        """Its place in tables (scratch, frozen, finetune, truncate)."""
        return list(STRATEGIES).index(self.name)

    @property
    def backbone_at_head_rate(self) -> bool:
        """Whether the whole network trains at the head's learning rate (a network without pretrained weights)."""
        return not self.pretrained


def _plain(name: str, depth: str, truncate_at: int | None, head: str) -> str:
    return name


def _with_head(name: str, depth: str, truncate_at: int | None, head: str) -> str:
    return name if head == "linear" else f"{name}({head})"


def _with_depth(name: str, depth: str, truncate_at: int | None, head: str) -> str:
    return f"{name}(depth={depth})"


def _with_cut(name: str, depth: str, truncate_at: int | None, head: str) -> str:
    return f"{name}(at={truncate_at}" + ("" if depth == "all" else f",depth={depth}") + ")"


STRATEGIES = {strategy.name: strategy for strategy in (
    Strategy("scratch", "the backbone architecture from random initialisation; every layer trains", {}, frozenset(),
             "all", pretrained=False, searched_rates=("lr_head",), sorted_by=None, family=None, labelled=_plain),
    Strategy("frozen", "the pretrained backbone frozen (batch norm in inference mode), a new head trains: with a "
             "linear head the linear probe", {}, frozenset(), "0", pretrained=True, searched_rates=("lr_head",),
             sorted_by=None, family=Family.DEPTH, labelled=_with_head),
    Strategy("finetune", "the top depth blocks of the pretrained backbone train, the rest stay frozen; depth 0 is "
             "frozen, depth all is full fine-tuning", {"depth": "a number of top blocks, a list of them, or all"},
             frozenset({"depth"}), None, pretrained=True, searched_rates=("lr_head", "lr_backbone"),
             sorted_by="depth", family=Family.DEPTH, labelled=_with_depth),
    Strategy("truncate", "the pretrained backbone cut after block at, pooled, a new head; all of it trains (TTL), or "
             "with depth only the top depth of the kept blocks", {"at": "the block after which the backbone is cut"},
             frozenset({"depth", "at"}), None, pretrained=True, searched_rates=("lr_head", "lr_backbone"),
             sorted_by="truncate_at", family=Family.CUT, labelled=_with_cut),
)}
STRATEGY_NAMES = tuple(STRATEGIES)
if TYPE_CHECKING:  # a Literal of names known once the registry is built is beyond a static checker
    StrategyName = str
else:
    StrategyName = Literal[STRATEGY_NAMES]
FIELDS = ("at", "depth")  # the protocol fields some strategies take, in the order they are checked


def arm_sort_key(strategy: str, depth: str, truncate_at: int | None, label: str) -> tuple:
    """Where an arm goes in tables, from its fields: by strategy, then by its depth or cut (numbers, then all),
    then by label."""
    entry = STRATEGIES[strategy]
    value = {"depth": depth, "truncate_at": truncate_at, None: None}[entry.sorted_by]
    return entry.rank, strategy, _number(value), label


def _number(value) -> float:
    if value is None:
        return -math.inf
    try:
        return float(value)
    except ValueError:  # all comes after every number
        return math.inf


def blocks_kept(truncate_at: int | None, blocks: int) -> int:
    """How many of the backbone's blocks an arm keeps: those up to the cut, or all."""
    return blocks if truncate_at is None else truncate_at + 1


def blocks_trained(depth: str, kept: int) -> int:
    """How many of the kept blocks train: the top depth of them, or all."""
    return kept if depth == "all" else min(int(depth), kept)
