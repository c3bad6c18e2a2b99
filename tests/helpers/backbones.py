"""Registered backbones built once per test session: random weights, at their smallest input size."""

from __future__ import annotations

import functools

from study.protocol.blocks import backbone_info
from study.training.models.backbones import build_backbone


@functools.cache
def smallest(name: str):
    """The backbone built with weights none at its min_size (the cnn at its default width)."""
    return build_backbone(name, "none", backbone_info(name).min_size)
