"""Invalid protocols generated from the declared constraints: every one gets one line FILE:LINE: field: message.

The generator walks the pydantic models beside a valid protocol and, at every field, knows what breaks it:
a number past a Field bound (ge, gt, le, lt, min_length), a value outside a Literal, a wrong type, a missing
required field, or a misspelt key. Each mutated protocol is checked in the library and through `study validate`.
"""

from __future__ import annotations

import copy
import io
import tempfile
import typing
from contextlib import redirect_stderr
from pathlib import Path

import annotated_types as at
import pytest
import yaml
from helpers.protocols import protocol_file_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from study.cli import main
from study.core.errors import ProtocolError
from study.protocol.blocks import BACKBONES
from study.protocol.schema import Protocol, parse_protocol

VALID = protocol_file_data("every_field")


def _models(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models(arg)]


def _model_for(annotation, value: dict) -> type[BaseModel]:
    models = _models(annotation)
    if "source" in value:  # the dataset's discriminated union
        return next(m for m in models if typing.get_args(m.model_fields["source"].annotation) == (value["source"],))
    return models[0]


def _literals(annotation) -> tuple:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return tuple(choice for arg in typing.get_args(annotation) for choice in _literals(arg))


def _scalar(annotation) -> type | None:
    """int, float or bool when that is the field's only non-None type."""
    types = {arg for arg in (typing.get_args(annotation) or (annotation,)) if arg is not type(None)}
    return next(iter(types)) if len(types) == 1 and next(iter(types)) in (int, float, bool) else None


def _bound_breakers(metadata: list, kind: type | None) -> list[tuple[str, object]]:
    """For each declared bound, a value just past it and one far past it."""
    step = 1 if kind is int else 0.001
    breakers = []
    for item in metadata:
        if isinstance(item, at.Ge):
            breakers += [(f"below {item.ge}", item.ge - step), (f"far below {item.ge}", item.ge - 1000)]
        elif isinstance(item, at.Gt):
            breakers += [(f"at {item.gt}", item.gt), (f"far below {item.gt}", item.gt - 1000)]
        elif isinstance(item, at.Le):
            breakers += [(f"above {item.le}", item.le + step), (f"far above {item.le}", item.le * 1000 + 1000)]
        elif isinstance(item, at.Lt):
            breakers += [(f"at {item.lt}", item.lt)]
    return breakers


def sites(model: type[BaseModel], node: dict, path: tuple = ()) -> list[tuple[str, tuple, object]]:
    """Every (mutation, path, new value) the declared constraints allow, for a valid node of model."""
    found: list[tuple[str, tuple, object]] = []
    for key, value in node.items():
        field = model.model_fields[key]
        here = path + (key,)
        kind = _scalar(field.annotation)
        found += [("value", here, bad) for _, bad in _bound_breakers(field.metadata, kind)]
        if _literals(field.annotation) and not isinstance(value, (dict, list)):
            found.append(("literal", here, {str(choice) for choice in _literals(field.annotation)}))
        if kind in (int, float):
            found.append(("value", here, "not-a-number"))
        if kind is bool:
            found.append(("value", here, "sometimes"))
        if field.is_required():
            found.append(("missing", here, None))
        if len(key) >= 5:
            found.append(("typo", here, None))
        items = typing.get_args(field.annotation)
        if isinstance(value, list) and items and typing.get_origin(items[0]) is typing.Annotated:
            item_meta = list(items[0].__metadata__[0].metadata)
            found += [("value", here + (0,), bad) for _, bad in _bound_breakers(item_meta, float)]
        if isinstance(value, dict) and _models(field.annotation):
            found.append(("value", here, 7))
            found += sites(_model_for(field.annotation, value), value, here)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for index, item in enumerate(value):
                found += sites(_model_for(field.annotation, item), item, here + (index,))
    return found


SITES = sites(Protocol, VALID)


def _parent(data: dict, path: tuple):
    for part in path[:-1]:
        data = data[part]
    return data


def _typos(word: str) -> st.SearchStrategy[str]:
    swaps = [word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1) if word[i] != word[i + 1]]
    drops = [word[:i] + word[i + 1:] for i in range(1, len(word))]
    return st.sampled_from(sorted(set(swaps + drops) - {word}))


@st.composite
def invalid_protocols(draw) -> tuple[dict, tuple, str]:
    """A protocol broken at one site: (data, the field path the error must name, the message it must hold)."""
    kind, path, value = draw(st.sampled_from(SITES))
    data = copy.deepcopy(VALID)
    parent = _parent(data, path)
    key = path[-1]
    if kind == "missing":
        del parent[key]
        return data, path, "required field is missing"
    if kind == "typo":
        typo = draw(_typos(key).filter(lambda word: word not in parent))
        parent[typo] = parent.pop(key)
        return data, path[:-1] + (typo,), f"unknown field (did you mean '{key}'?)"
    if kind == "literal":
        value = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda w: w not in value))
    parent[key] = value
    return data, path, "expected "


def _line_of(text: str, path: tuple) -> int:
    """The line where path's key (or, for a missing key, its parent) sits in the dumped YAML."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                return line
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        else:
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def test_the_generator_covers_every_kind_of_constraint():
    kinds = {kind for kind, _, _ in SITES}
    assert kinds == {"value", "literal", "missing", "typo"}
    paths = {".".join(map(str, path)) for _, path, _ in SITES}
    for expected in ("dataset.size", "fractions.0", "train.early_stopping.patience", "strategies.1.head.dropout",
                     "run.retries", "claims.0.margin", "report.alpha", "dataset.on_bad_file", "train.optimizer"):
        assert expected in paths
    assert len(SITES) > 150


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_protocols())
def test_every_invalid_protocol_gets_one_line_naming_file_line_and_field(case):
    data, path, fragment = case
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    field = ".".join(map(str, path))
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(text, "fuzz.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"fuzz.yaml:{_line_of(text, path)}: {field}: "), (message, text)
    assert fragment in message, message

    with tempfile.TemporaryDirectory() as folder:
        protocol = Path(folder) / "fuzz.yaml"
        protocol.write_text(text)
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            code = main(["validate", str(protocol)])
    assert code == 2 and stderr.getvalue() == f"error: {str(caught.value).replace('fuzz.yaml', str(protocol), 1)}\n"


@settings(max_examples=150, deadline=None)
@given(backbone=st.sampled_from(sorted(BACKBONES)), past=st.integers(1, 50),
       field=st.sampled_from(["at", "depth"]), in_list=st.booleans())
def test_cut_points_and_depths_past_the_block_map_name_the_strategy(backbone, past, field, in_list):
    blocks = len(BACKBONES[backbone].blocks)
    bad = blocks - 1 + past if field == "at" else blocks + past
    data = copy.deepcopy(VALID)
    data["backbone"] = {"name": backbone, "weights": "none"}
    data["strategies"] = [{"name": "scratch"}, {"name": "frozen"}, {"name": "finetune", "depth": [1]},
                          {"name": "truncate", "at": [1]}]
    data["claims"] = []
    index = 3 if field == "at" else 2
    data["strategies"][index][field] = [1, bad] if in_list else bad
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    expected = rf"^fuzz\.yaml:{_line_of(text, ('strategies', index, field))}: strategies\.{index}\.{field}: {backbone} "
    with pytest.raises(ProtocolError, match=expected + rf"has .*got (depth )?{bad}"):
        parse_protocol(text, "fuzz.yaml")
