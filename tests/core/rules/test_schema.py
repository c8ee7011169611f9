"""Tests of the JSON Schemas of rules files (router.core.rules.schema)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from router.core.rules.schema import SCHEMA_KINDS, rules_schema
from tests.core.rules.conftest import BUNDLED_RULES

FILES = {
    "area": sorted((BUNDLED_RULES / "areas").glob("*.yaml")),
    "forms": [BUNDLED_RULES / "forms.yaml"],
    "acknowledgments": [BUNDLED_RULES / "acknowledgments.yaml"],
    "sectors": [BUNDLED_RULES / "sectors.yaml"],
}


def test_area_schema_describes_the_area_keys() -> None:
    """The area schema lists every key, forbids others and does not require `id`."""
    schema = rules_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert {"id", "names", "postcodes", "inboxes", "to", "cc", "team", "notes"} <= set(
        schema["properties"]
    )
    assert set(schema["required"]) == {"names", "to"}
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_forms_schema_names_the_canonical_fields() -> None:
    """The forms schema restricts label keys to canonical field names."""
    schema = rules_schema("forms")
    assert "person_name" in schema["properties"]["labels"]["propertyNames"]["enum"]
    assert "referrer_contact" in schema["properties"]["required"]["items"]["enum"]


def test_unknown_kind() -> None:
    """An unknown kind raises ValueError."""
    with pytest.raises(ValueError, match="unknown schema kind"):
        rules_schema("areas")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_shipped_schema_files_are_current(kind: str) -> None:
    """rules/schemas/*.schema.json (used by editors) equal what `rules schema` prints."""
    shipped = json.loads((BUNDLED_RULES / "schemas" / f"{kind}.schema.json").read_text())
    assert shipped == rules_schema(kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_bundled_files_satisfy_their_schema(kind: str) -> None:
    """Every bundled rules file validates against its schema (as an editor would check)."""
    jsonschema: Any = pytest.importorskip("jsonschema")
    schema = rules_schema(kind)  # type: ignore[arg-type]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in FILES[kind]:
        data = json.loads(json.dumps(YAML(typ="safe").load(path)))
        errors = [error.message for error in validator.iter_errors(data)]
        assert errors == [], (path.name, errors)


def test_schema_rejects_a_typo() -> None:
    """An editor using the area schema flags an unknown key."""
    jsonschema: Any = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(rules_schema())
    data = {"names": ["X"], "to": "a@example.org", "inboxs": []}
    assert any("inboxs" in error.message for error in validator.iter_errors(data))
