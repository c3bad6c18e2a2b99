"""The arms a protocol's strategies stand for: one per depth or cut point listed, each with its label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from study.core.errors import ProtocolError
from study.protocol.strategy_registry import STRATEGIES

if TYPE_CHECKING:
    from study.protocol.schema import BackboneSpec, HeadSpec, Protocol, StrategySpec


@dataclass(frozen=True)
class Arm:
    """One strategy variant: a column of the comparison (e.g. finetune with depth 2)."""

    strategy: str
    depth: str  # number of top blocks that train, or "all"
    truncate_at: int | None
    head: HeadSpec
    lr_backbone: float
    lr_head: float
    lr_output: float | None = None  # the head's output layer; None: lr_head
    backbone: BackboneSpec | None = None  # the strategy's own network; None: the protocol's

    @property
    def label(self) -> str:
        variant = STRATEGIES[self.strategy].label(self.depth, self.truncate_at, self.head.kind)
        return variant + (f"[{backbone_tag(self.backbone)}]" if self.backbone else "")


def backbone_tag(backbone: BackboneSpec) -> str:
    """A short name of a network in arm labels: the architecture, and its width when set."""
    return backbone.name if backbone.width is None else f"{backbone.name}-{backbone.width}"


def expand_arms(strategy: StrategySpec, protocol: Protocol) -> list[Arm]:
    """The arms a strategy entry stands for (one per depth or cut point listed)."""
    entry = STRATEGIES[strategy.name]
    lr = strategy.lr or protocol.train.lr
    head = strategy.head_spec()
    lr_backbone = lr.head if entry.backbone_at_head_rate else lr.backbone
    depths = [entry.depth] if entry.depth is not None else as_list(strategy.depth) or ["all"]
    cuts = as_list(strategy.at) if "at" in entry.takes else [None]
    return [Arm(strategy.name, str(depth), at, head=head, lr_backbone=lr_backbone, lr_head=lr.head, lr_output=lr.output,
                backbone=strategy.backbone) for at in cuts for depth in depths]


def protocol_arms(protocol: Protocol) -> list[Arm]:
    """Every arm of the protocol, in protocol order; an arm listed twice is an error."""
    arms = [arm for strategy in protocol.strategies for arm in expand_arms(strategy, protocol)]
    labels = [arm.label for arm in arms]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ProtocolError(f"strategies: the same arm is listed twice: {', '.join(duplicates)}")
    return arms


def as_list(value: Any) -> list:
    """None as [], a list as itself, anything else as a one-item list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
