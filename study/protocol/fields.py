"""Protocol fields in words, from the schema's declarations: what a field means and what it accepts, for the
comments of a written protocol (`study init`)."""

from __future__ import annotations

import typing
from types import NoneType, UnionType
from typing import Literal

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

_BOUNDS = {Gt: ("gt", ">"), Ge: ("ge", ">="), Lt: ("lt", "<"), Le: ("le", "<=")}  # kind -> attribute, sign


def meaning(model: type[BaseModel], name: str) -> str:
    """The field's description, the values it accepts (choices or bounds) and its default, as one sentence."""
    info = model.model_fields[name]
    parts = [info.description] if info.description else []
    choices = literal_values(info.annotation)
    if choices:
        parts.append(f"one of {', '.join(map(str, choices))}")
    bounds = [f"{_BOUNDS[type(item)][1]} {getattr(item, _BOUNDS[type(item)][0])}"
              for item in info.metadata if type(item) in _BOUNDS]
    if bounds:
        parts.append(f"a number {' and '.join(bounds)}")
    if any(isinstance(item, MinLen) and item.min_length for item in info.metadata):
        parts.append("at least one")
    default = info.default
    if default is not PydanticUndefined and isinstance(default, (str, int, float)) and default != "":
        parts.append(f"default {str(default).lower() if isinstance(default, bool) else default}")
    return "; ".join(parts)


def literal_values(annotation) -> tuple:
    """The choices of a Literal annotation (or of a Literal or None); () for anything else."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, UnionType) else (
        annotation,)
    literals = [option for option in options if option is not NoneType]
    if not literals or any(typing.get_origin(option) is not Literal for option in literals):
        return ()
    return tuple(value for option in literals for value in typing.get_args(option))
