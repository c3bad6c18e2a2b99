"""Protocol errors in one template: `FILE:LINE: field.path: expected WHAT, got VALUE` (with a suggestion).

Turns pydantic's validation errors into that line: the key path as written in the YAML (union branch names
dropped), its line, and a message. Knows nothing of the protocol's fields beyond the root model it is given.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from study.core.errors import ProtocolError


class FieldError(ValueError):
    """A cross-field error that knows which field it belongs to."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


def validation_error(exc: ValidationError, data: Any, node: yaml.Node, filename: str, root: type) -> ProtocolError:
    """The one error line for a failed validation of data (composed as node) against the root model."""
    # of a union's branch errors, the deepest comes from the branch that matched the value's shape; beside a
    # missing key, an unknown key goes first: it is most likely the missing one misspelt
    located = [(_error_loc(error, data), error) for error in exc.errors(include_url=False)]
    missing = {loc[:-1] for loc, error in located if error["type"] == "missing"}
    loc, error = max(located, key=lambda pair: (len(pair[0]),
                                                pair[1]["type"] == "extra_forbidden" and pair[0][:-1] in missing))
    return located_error(filename, node, loc, _message(error, data, loc, root))


def located_error(filename: str, node: yaml.Node, loc: tuple, message: str) -> ProtocolError:
    """FILE:LINE: field: message, with the line of loc (or of its nearest parent present) in the document."""
    field = ".".join(_short(str(part)) for part in loc) or "(top level)"
    return ProtocolError(f"{filename}:{_line_of(node, loc)}: {field}: {_short(message, 1000)}")


def did_you_mean(word: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line_of(node: yaml.Node, loc: tuple) -> int:
    """The 1-based line of the deepest part of loc present in the composed document (a missing field points at its
    parent): a key's line, or a list item's. It walks down loc alone, since YAML aliases can make the whole node
    graph exponentially large while any one path through it stays short."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            matches = [(key, value) for key, value in node.value if key.value == part]
            if not matches:
                break
            key, node = matches[-1]  # a repeated key: the last one holds the value, as when loading
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-branch names (e.g. 'medmnist', 'int') so loc follows the YAML keys."""
    clean: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            clean.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            clean.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_branch(part):
            clean.append(part)
            node = None
    return tuple(clean)


def _is_union_branch(part: str) -> bool:
    """Pydantic names union branches by tag or type; such parts are not YAML keys."""
    branches = {"medmnist", "folder", "csv", "dicom", "synthetic", "int", "str", "list[...]", "HeadSpec"}
    return part in branches or "[" in part


_EXPECTED = {  # pydantic error type -> what the field expects, filled from the error's context
    "greater_than": "a number > {gt}",
    "greater_than_equal": "a number >= {ge}",
    "less_than": "a number < {lt}",
    "less_than_equal": "a number <= {le}",
    "too_short": "at least {min_length} item(s)",
    "literal_error": "one of {expected}",
    "int_parsing": "a valid integer",
    "int_type": "a valid integer",
    "int_from_float": "a whole number",
    "float_parsing": "a valid number",
    "float_type": "a valid number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "string_pattern_mismatch": "letters, digits, '_', '.' or '-' (not starting with a symbol)",
}


def _message(error: ErrorDetails, data: Any, loc: tuple, root: type) -> str:
    """One template: 'expected WHAT, got VALUE' (plus a suggestion), or the validator's own sentence."""
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown field{did_you_mean(str(loc[-1]), _allowed_keys(loc[:-1], data, root))}"
    if kind == "union_tag_not_found" and _misspelt_tag(error, data):
        tag = context["discriminator"].strip("'")
        return f"unknown field (did you mean {tag!r}?)"
    if kind in {"missing", "union_tag_not_found"}:
        return "required field is missing"
    if kind == "union_tag_invalid":
        tags = [tag.strip(" '") for tag in context["expected_tags"].split(",")]
        return f"expected one of {tags}, got {context['tag']!r}{did_you_mean(context['tag'], tags)}"
    found = error.get("input")
    if kind in _EXPECTED:
        expected = _EXPECTED[kind].format(**context)
        got = len(found) if kind == "too_short" else _shown(found)
        hint = did_you_mean(str(found), re.findall(r"'([^']*)'", context.get("expected", ""))) if kind == "literal_error" else ""
        return f"expected {expected}, got {got}{hint}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind != "value_error":
        message = f"{message}; got {_shown(found)}"
    return message


def _shown(value: Any) -> str:
    """A found value as the message shows it: scalars as written, mappings and lists by kind."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return _short(repr(value))


def _short(text: str, limit: int = 60) -> str:
    """text on one line, cut to limit characters: a value or key may be as long as the file."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _allowed_keys(loc: tuple, data: Any, root: type) -> list[str]:
    """Field names of the model that sits at loc, for 'did you mean' suggestions."""
    model: Any = root
    node = data
    for part in loc:
        node = node[part] if isinstance(node, (dict, list)) else None
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation, node)
    return list(getattr(model, "model_fields", {}))


def _model_of(annotation: Any, node: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    candidates = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    for arg in args:
        if typing.get_origin(arg) is Union or typing.get_args(arg):
            candidates += [a for a in typing.get_args(arg) if isinstance(a, type) and issubclass(a, BaseModel)]
        if typing.get_origin(arg) is list:
            return _model_of(typing.get_args(arg)[0], node)
    if isinstance(node, dict) and "source" in node:
        for candidate in candidates:
            source = candidate.model_fields.get("source")
            if source is not None and node["source"] == typing.get_args(source.annotation)[0]:
                return candidate
    return candidates[0] if candidates else None


def _error_loc(error: ErrorDetails, data: Any) -> tuple:
    """The YAML key path a pydantic error belongs to."""
    raw_loc = tuple(error["loc"])
    context = (error.get("ctx") or {}).get("error")
    if isinstance(context, FieldError):
        raw_loc = context.loc
    if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        raw_loc += (_misspelt_tag(error, data) or error["ctx"]["discriminator"].strip("'"),)
    return _clean_loc(raw_loc, data)


def _misspelt_tag(error: Mapping[str, Any], data: Any) -> str | None:
    """A key beside a missing union tag (e.g. 'sorce' for 'source') that is most likely the tag misspelt."""
    node = data
    for part in error["loc"]:
        node = node[part] if isinstance(node, (dict, list)) else None
    if error["type"] != "union_tag_not_found" or not isinstance(node, dict):
        return None
    close = difflib.get_close_matches(error["ctx"]["discriminator"].strip("'"), [str(key) for key in node], n=1)
    return close[0] if close else None
