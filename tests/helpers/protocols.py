"""The protocols in tests/protocols, read as text with chosen fields set, and the run ids they plan."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
VALUE = r"(?:\[[^\]]*\]|[^,}\n]+)"  # a flow list, or a scalar up to the next comma, brace or line end


def protocol_file_text(stem: str, **fields) -> str:
    """tests/protocols/<stem>.yaml with each field set to str(value): the top-level key of that name, else the one key
    of that name inside a flow mapping."""
    text = (PROTOCOLS / f"{stem}.yaml").read_text()
    for field, value in fields.items():
        text = _set_field(text, stem, field, str(value))
    return text


def protocol_file_data(stem: str) -> dict:
    """tests/protocols/<stem>.yaml as the mapping it holds."""
    return yaml.safe_load((PROTOCOLS / f"{stem}.yaml").read_text())


def _set_field(text: str, stem: str, field: str, value: str) -> str:
    for pattern in (rf"(?m)^({field}: ){VALUE}", rf"([{{ ]{field}: ){VALUE}"):
        found = len(re.findall(pattern, text))
        if found == 1:
            return re.sub(pattern, lambda match: match.group(1) + value, text)
        if found > 1:
            raise ValueError(f"{stem}.yaml sets {field} {found} times; name one that it sets once")
    raise ValueError(f"{stem}.yaml does not set {field}")


def write_tiny_protocol(directory: Path, seeds: int = 2, epochs: int = 2) -> Path:
    """directory/tiny.yaml: a synthetic protocol small enough to run in seconds."""
    path = directory / "tiny.yaml"
    path.write_text(protocol_file_text("tiny", seeds=seeds, epochs=epochs))
    return path


def run_ids(text: str, fingerprint: str = "data") -> list[str]:
    """The run ids the protocol text plans for data with this fingerprint."""
    return [cell.run_id for cell in plan_cells(parse_protocol(text), fingerprint)]
