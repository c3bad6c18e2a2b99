"""The documentation's generated protocol reference agrees with the schema, field by field."""

import re
from pathlib import Path

from study.protocol.reference import field_names, reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "protocol.md"
REGENERATE = "python -m study.protocol.reference > docs/reference/protocol.md"


def test_the_committed_reference_is_what_the_schema_generates():
    assert PAGE.read_text() == reference(), f"the schema changed: run {REGENERATE}"


def test_every_field_has_a_description_and_a_row_in_its_section():
    sections = {part.split("\n", 1)[0]: part for part in re.split(r"^## ", PAGE.read_text(), flags=re.MULTILINE)}
    fields = list(field_names())
    assert [f"{model.__name__}.{name}" for _, model, name in fields if not model.model_fields[name].description] == []
    assert [(title, name) for title, _, name in fields if f"\n| `{name}` | " not in sections.get(title, "")] == []


def test_the_reference_links_only_sections_it_has():
    page = reference()
    anchors = {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())
               for title in re.findall(r"^## (.+)$", page, flags=re.MULTILINE)}
    assert set(re.findall(r"\]\(#([^)]+)\)", page)) <= anchors
