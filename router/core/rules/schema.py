"""JSON Schemas of the rules files, for editors (yaml-language-server) and `rules schema`."""

from __future__ import annotations

from typing import Any, Literal

from router.core.rules.model import AckTexts, Area, FormRules, SectorRules
from router.models import CANONICAL_FIELDS

SchemaKind = Literal["area", "forms", "acknowledgments", "sectors"]
SCHEMA_KINDS: tuple[SchemaKind, ...] = ("area", "forms", "acknowledgments", "sectors")

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Loose on case and spaces, as the loader is; `rules check` does the exact checks.
_DISTRICT = r"^\s*[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*$"
_POSTCODE_AREA = r"^\s*[A-Za-z]{1,2}\s*$"

_AREA_HELP = {
    "id": "Area id; defaults to the file name (without .yaml) and must equal it if given.",
    "names": "Local authority names the form may give (case and affixes are ignored).",
    "postcodes": "Postcode coverage: exact districts (SE13) and whole postcode areas (CT).",
    "inboxes": "Council mailboxes this area's referrals arrive at.",
    "to": "The police force's Prevent referral address that forwards go to.",
    "cc": "Addresses copied in on every forward (MASH, council Prevent team).",
    "team": "The council Prevent team mailbox for incomplete and needs-review mail; "
    "leave out to use the operator's review address.",
    "incomplete_policy": "team (default): incomplete forms go to the team only; "
    "forward_flagged: forward to the force anyway, marked INCOMPLETE.",
    "conditions": "Extra copies by the person's age group (child under 18, adult).",
    "notes": "Free text for admins; not used for routing.",
}


def rules_schema(kind: SchemaKind = "area") -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of one kind of rules file.

    Args:
        kind: "area" for `areas/<id>.yaml`, "forms" for forms.yaml, "acknowledgments" for
            acknowledgments.yaml, "sectors" for sectors.yaml.

    Raises:
        ValueError: an unknown kind.
    """
    if kind == "area":
        schema = _area_schema()
    elif kind == "forms":
        schema = _forms_schema()
    elif kind == "acknowledgments":
        schema = AckTexts.model_json_schema()
        schema["title"] = "acknowledgments.yaml"
    elif kind == "sectors":
        schema = SectorRules.model_json_schema()
        schema["title"] = "Referring sectors by email domain (sectors.yaml)"
    else:
        raise ValueError(f"unknown schema kind {kind!r}: use one of {', '.join(SCHEMA_KINDS)}")
    return {"$schema": _DIALECT, **schema}


def _area_schema() -> dict[str, Any]:
    """The schema of an area file: `id` is optional, postcodes have a pattern."""
    schema = Area.model_json_schema()
    schema["title"] = "Referral router area (areas/<id>.yaml)"
    schema["required"] = [name for name in schema["required"] if name != "id"]
    for name, text in _AREA_HELP.items():
        schema["properties"][name]["description"] = text
    postcodes = schema["$defs"]["Postcodes"]["properties"]
    postcodes["districts"]["items"]["pattern"] = _DISTRICT
    postcodes["areas"]["items"]["pattern"] = _POSTCODE_AREA
    return schema


def _forms_schema() -> dict[str, Any]:
    """The schema of forms.yaml: keys are canonical field names."""
    schema = FormRules.model_json_schema()
    schema["title"] = "Referral router form labels (forms.yaml)"
    fields = {"enum": list(CANONICAL_FIELDS)}
    schema["properties"]["labels"]["propertyNames"] = fields
    schema["properties"]["composite"]["propertyNames"] = fields
    schema["properties"]["required"]["items"]["enum"] = [*CANONICAL_FIELDS, "referrer_contact"]
    return schema
