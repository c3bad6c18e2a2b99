"""The protocol reference in Markdown, generated from the schema's pydantic models: one table per section.

`python -m study.protocol.reference > docs/reference/protocol.md` writes the page the documentation serves.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from typing import Annotated, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from study.protocol.schema import Protocol

HEADER = """\
# Protocol reference

Generated from the protocol's schema (`study/protocol/schema.py`) by `python -m study.protocol.reference`; do not
edit it by hand. What the fields mean together, with examples: [Writing a protocol](../guide/protocol.md).
Unknown keys are errors.
"""


def reference() -> str:
    """The whole page: the top level, then a section per mapping a field holds."""
    sections = _sections(Protocol)
    anchors = {model: _slug(title) for model, (title, _) in sections.items()}
    parts = [HEADER]
    for model, (title, base) in sections.items():
        parts.append(f"## {title}\n")
        doc = model.__dict__.get("__doc__")
        if doc and model is not Protocol:
            parts.append(" ".join(doc.split()) + "\n")
        own = {name: info for name, info in model.model_fields.items() if base is None or name not in base.model_fields}
        parts.append(_table(own, anchors))
    return "\n".join(parts)


def field_names() -> Iterator[tuple[str, type[BaseModel], str]]:
    """(section title, model, field) for every field of the protocol and of every model its fields hold."""
    for model, (title, base) in _sections(Protocol).items():
        own = [name for name in model.model_fields if base is None or name not in base.model_fields]
        yield from ((title, model, name) for name in own)


def _sections(root: type[BaseModel]) -> dict[type[BaseModel], tuple[str, type[BaseModel] | None]]:
    """Each model under root, in reading order, with its section title (the paths that hold it) and the base whose
    fields its own section leaves out (the fields every member of a union shares)."""
    paths: dict[type[BaseModel], list[str]] = {root: ["Top level"]}
    bases: dict[type[BaseModel], type[BaseModel] | None] = {root: None}

    def visit(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            members = _models(info.annotation)
            if len(members) > 1:  # a union of mappings: the fields they share first, then each member's own
                shared = _shared_base(members)
                _add(paths, bases, shared, f"`{path}`", None, visit, path)
                assert isinstance(info.discriminator, str)  # a union of mappings is told apart by one field
                for member in members:
                    tag = get_args(member.model_fields[info.discriminator].annotation)[0]
                    _add(paths, bases, member, f"`{path}` with `{info.discriminator}: {tag}`", shared, visit, path)
            elif members:
                _add(paths, bases, members[0], f"`{path}`", None, visit, path + ("[]" if _is_list(info) else ""))

    visit(root, "")
    return {model: (", ".join(paths[model]), bases[model]) for model in paths}


def _add(paths, bases, model, title, base, visit, path) -> None:
    if model in paths:
        paths[model].append(title)
        return
    paths[model], bases[model] = [title], base
    visit(model, f"{path}.")


def _shared_base(members: list[type[BaseModel]]) -> type[BaseModel]:
    """The nearest class every member derives from."""
    return next(cls for cls in members[0].__mro__ if all(issubclass(member, cls) for member in members))


def _models(annotation) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, a union's members, or a list's items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _is_list(info: FieldInfo) -> bool:
    return any(get_origin(arg) is list for arg in (info.annotation, *get_args(info.annotation)))


def _table(fields: dict[str, FieldInfo], anchors: dict) -> str:
    rows = ["| field | type | default | constraint | description |", "|---|---|---|---|---|"]
    for name, info in fields.items():
        choices = _choices(info.annotation)
        if choices:
            kind = _type_name(type(choices[0])) + (" or `null`" if type(None) in get_args(info.annotation) else "")
        else:
            kind = _type(info.annotation, anchors)
        if info.discriminator:
            kind += f", chosen by `{info.discriminator}`"
        limits = ([_one_of(choices)] if choices else []) + _limits(info)
        cells = [f"`{name}`", kind, _default(info, anchors), ", ".join(limits), _text(info.description or "")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _type(annotation, anchors: dict) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0], anchors)
    if origin in (Union, types.UnionType):
        if all(isinstance(arg, type) and issubclass(arg, BaseModel) for arg in args):
            return f"[mapping](#{anchors[_shared_base(list(args))]})"
        return " or ".join(_type(arg, anchors) for arg in args)
    if origin is Literal:
        return " or ".join(f"`{_yaml(value)}`" for value in args)
    if origin is tuple and Ellipsis not in args:
        return "[" + ", ".join(_type(arg, anchors) for arg in args) + "]"
    if origin in (list, tuple):
        item = _type(args[0], anchors)
        return f"list of ({item})" if " or " in item else f"list of {item}"
    if annotation is type(None):
        return "`null`"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[mapping](#{anchors[annotation]})"
    return _type_name(annotation)


def _type_name(kind: type) -> str:
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(kind, kind.__name__)


def _choices(annotation) -> tuple:
    """The values of a Literal, alone or with null; () for any other annotation."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 2 and args[1] is type(None):
        return _choices(args[0])
    return ()


def _one_of(values: tuple) -> str:
    return f"`{_yaml(values[0])}`" if len(values) == 1 else "one of " + ", ".join(f"`{_yaml(v)}`" for v in values)


def _limits(info: FieldInfo) -> list[str]:
    """The field's bounds, length and pattern, then those of each item of a list."""
    found = _bounds(info.metadata)
    for arg in get_args(info.annotation):
        items = [each for inner in get_args(arg)[1:] if get_origin(arg) is Annotated for each in inner.metadata]
        if items:
            found.append("each " + ", ".join(_bounds(items)))
    return found


def _bounds(metadata: list) -> list[str]:
    found = []
    for item in metadata:
        for kind, sign in ((Ge, ">="), (Gt, ">"), (Le, "<="), (Lt, "<")):
            if isinstance(item, kind):
                found.append(f"{sign} {_yaml(getattr(item, kind.__name__.lower()))}")
        if isinstance(item, MinLen):
            found.append("not empty" if item.min_length == 1 else f"at least {item.min_length} items")
        if getattr(item, "pattern", None):
            found.append(f"matches `{item.pattern}`")
    return found


def _default(info: FieldInfo, anchors: dict) -> str:
    if info.default_factory is not None:
        return f"`{_yaml(info.get_default(call_default_factory=True))}`"
    value = info.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel) and value == type(value).model_construct():
        return f"[its fields' defaults](#{anchors[type(value)]})"
    return f"`{_yaml(value)}`"


def _yaml(value) -> str:
    """A value as it is written in a protocol file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, BaseModel):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.model_dump().items()) + "}"
    return str(value)


def _text(description: str) -> str:
    """A description as a Markdown table cell: angle brackets and bars escaped."""
    return description.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _slug(title: str) -> str:
    """The anchor Markdown gives a heading (Python-Markdown's and GitHub's agree on these titles)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


if __name__ == "__main__":
    print(reference(), end="")
