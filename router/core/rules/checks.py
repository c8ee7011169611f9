"""Checks of rules files beyond their shape: postcodes, overlaps, field names and texts."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from router.core.rules.document import Document, Loc, RuleProblem, suggest
from router.core.rules.matcher import normalise_authority
from router.core.rules.postcode import (
    area_letters,
    compact,
    is_district,
    is_postcode_area,
    split_postcode,
)
from router.models import CANONICAL_FIELDS

# `required` may also name this pseudo-field: a referrer email or phone.
REQUIRED_NAMES: tuple[str, ...] = (*CANONICAL_FIELDS, "referrer_contact")
# The only values an acknowledgment text may use: none of them is personal data.
ACK_PLACEHOLDERS: tuple[str, ...] = ("reference", "area_name", "missing", "from_address")
ACK_TEXT_KEYS: tuple[str, ...] = ("subject", "forward", "incomplete", "needs_review", "footer")
_ACK_BODIES: tuple[str, ...] = ("forward", "incomplete", "needs_review")
_LETTERS = re.compile(r"[A-Z]{1,2}")


@dataclass
class AreaFile:
    """An area file as read, whether or not it validates: its document (for lines), its
    plain data and its id (the file stem)."""

    id: str
    doc: Document
    data: dict[str, Any]


def strings_at(data: Any, *keys: str) -> Iterator[tuple[int, str]]:
    """Yield (index, value) for the string items of the list at `keys`, skipping anything
    malformed (the model validation reports that)."""
    for key in keys:
        if not isinstance(data, dict):
            return
        data = data.get(key)
    if isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, str):
                yield index, item


def check_area_file(area: AreaFile) -> list[RuleProblem]:
    """Check one area file's id and postcodes."""
    problems = []
    given = area.data.get("id")
    if given is not None and given != area.id:
        problems.append(
            area.doc.problem(
                ("id",), f"id {given!r} must equal the file name {area.id!r} (or be left out)"
            )
        )
    problems += _check_list(area, "districts", _district_problem)
    problems += _check_list(area, "areas", _postcode_area_problem)
    return problems


def _check_list(area: AreaFile, key: str, judge: Any) -> list[RuleProblem]:
    """Check each entry of `postcodes.<key>` with `judge` and for repeats."""
    problems, seen = [], set()
    for index, value in strings_at(area.data, "postcodes", key):
        code = compact(value)
        message = judge(value, code)
        if message is None and code in seen:
            message = f"{code!r} is listed twice"
        seen.add(code)
        if message:
            problems.append(area.doc.problem(("postcodes", key, index), message))
    return problems


def _district_problem(value: str, code: str) -> str | None:
    """Say what is wrong with a district entry, or None."""
    if is_district(code):
        return None
    if _LETTERS.fullmatch(code):
        return f"{value!r} is a postcode area: list it under postcodes.areas"
    parts = split_postcode(code)
    if parts is not None and parts[1] and is_district(parts[0]):
        return f"{value!r} is a full postcode: list its district {parts[0]!r}"
    return f"{value!r} is not a postcode district (an outward code such as SE13, W1A or KT1)"


def _postcode_area_problem(value: str, code: str) -> str | None:
    """Say what is wrong with a postcode area entry, or None."""
    if _LETTERS.fullmatch(code) and is_postcode_area(code):
        return None
    if is_district(code):
        return f"{value!r} is a district: list it under postcodes.districts"
    return f"{value!r} is not a UK postcode area (one or two letters such as CT or ME)"


def check_own_addresses(areas: list[AreaFile]) -> list[RuleProblem]:
    """Warnings: an area's `to`, `cc` or `team` address that is one of the router's own
    inbox addresses (any area's `inboxes`). A copy sent there comes back to the router,
    which ignores it as its own mail, so nobody reads it."""
    inboxes = {
        address.strip().lower(): area.id
        for area in areas
        for _, address in strings_at(area.data, "inboxes")
    }
    warnings: list[RuleProblem] = []
    for area in areas:
        targets: list[tuple[Loc, Any]] = [(("to",), area.data.get("to"))]
        targets += [(("team",), area.data.get("team"))]
        targets += [(("cc", index), value) for index, value in strings_at(area.data, "cc")]
        for loc, value in targets:
            if not isinstance(value, str) or value.strip().lower() not in inboxes:
                continue
            owner = inboxes[value.strip().lower()]
            message = (
                f"{value!r} is one of the router's own inbox addresses (in {owner}'s "
                "inboxes): mail sent there comes back to the router and is ignored"
            )
            warnings.append(area.doc.problem(loc, message))
    return warnings


def check_overlaps(areas: list[AreaFile]) -> list[RuleProblem]:
    """Check that no two areas claim the same district, postcode area, authority name or
    inbox, and that no district lies in a postcode area another area claims whole.

    The later file (in name order) is the one reported, naming the earlier one.
    """
    problems: list[RuleProblem] = []
    claims: dict[str, dict[str, tuple[AreaFile, Loc]]] = {
        "district": {},
        "postcode area": {},
        "name": {},
        "inbox": {},
    }
    for area in areas:
        entries: list[tuple[str, tuple[str, ...], Callable[[str], str]]] = [
            ("district", ("postcodes", "districts"), compact),
            ("postcode area", ("postcodes", "areas"), compact),
            ("name", ("names",), normalise_authority),
            ("inbox", ("inboxes",), lambda address: address.strip().lower()),
        ]
        for kind, keys, normalise in entries:
            for index, value in strings_at(area.data, *keys):
                loc: Loc = (*keys, index)
                previous = claims[kind].setdefault(normalise(value), (area, loc))
                if previous[0] is not area:
                    problems.append(area.doc.problem(loc, _clash(kind, value, previous)))
    for district, (area, loc) in claims["district"].items():
        whole = claims["postcode area"].get(area_letters(district))
        if whole is not None and whole[0] is not area:
            message = (
                f"{district!r} lies in postcode area {area_letters(district)!r}, which "
                f"area {whole[0].id!r} ({_where(whole)}) covers whole"
            )
            problems.append(area.doc.problem(loc, message))
    return problems


def _where(claim: tuple[AreaFile, Loc]) -> str:
    """Describe where an earlier claim was made: `areas/kent.yaml:4`."""
    area, loc = claim
    line = area.doc.line(loc)
    return area.doc.file if line is None else f"{area.doc.file}:{line}"


def _clash(kind: str, value: str, previous: tuple[AreaFile, Loc]) -> str:
    """Word a clash between two areas."""
    if kind == "name":
        return (
            f"{value!r} names the same local authority as area {previous[0].id!r} "
            f"({_where(previous)}): names are compared ignoring case and affixes"
        )
    return f"{kind} {value!r} is also claimed by area {previous[0].id!r} ({_where(previous)})"


def check_forms(doc: Document, data: dict[str, Any]) -> list[RuleProblem]:
    """Check forms.yaml: canonical field names are known and no label means two fields."""
    problems = []
    for section in ("labels", "composite"):
        mapping = data.get(section)
        if isinstance(mapping, dict):
            for name in mapping:
                if name not in CANONICAL_FIELDS:
                    message = f"unknown canonical field {name!r}" + suggest(
                        str(name), CANONICAL_FIELDS
                    )
                    problems.append(doc.problem((section, name), message))
    for index, name in strings_at(data, "required"):
        if name not in REQUIRED_NAMES:
            message = f"unknown canonical field {name!r}" + suggest(name, REQUIRED_NAMES)
            problems.append(doc.problem(("required", index), message))
    problems += _check_label_clashes(doc, data)
    return problems


def _label_key(label: str) -> str:
    """A rough normal form of a label, for spotting one label listed under two fields."""
    return re.sub(r"[^0-9a-z]+", "", label.lower())


def _check_label_clashes(doc: Document, data: dict[str, Any]) -> list[RuleProblem]:
    """Report a label that is listed under two canonical fields (which would it mean?)."""
    problems, owner = [], dict[str, str]()
    labels = data.get("labels")
    for field in labels if isinstance(labels, dict) else {}:
        for index, label in strings_at(labels, field):
            first = owner.setdefault(_label_key(label), field)
            if first != field:
                message = f"label {label!r} is also listed under {first!r}"
                problems.append(doc.problem(("labels", field, index), message))
    return problems


def check_acknowledgments(
    doc: Document, data: dict[str, Any], area_ids: list[str]
) -> list[RuleProblem]:
    """Check acknowledgments.yaml: area keys, placeholders, and that every acknowledgment
    has its texts, its reference number and the 999 advice."""
    problems = []
    given = data.get("default")
    default: dict[str, Any] = given if isinstance(given, dict) else {}
    for key in ACK_TEXT_KEYS:
        if isinstance(given, dict) and default.get(key) is None:
            problems.append(doc.problem(("default", key), f"the default needs a {key!r} text"))
    texts: list[tuple[Loc, dict[str, Any]]] = [(("default",), default)]
    areas = data.get("areas")
    for area_id, texts_for_area in (areas if isinstance(areas, dict) else {}).items():
        if area_id not in area_ids:
            message = f"{area_id!r} is not an area id" + suggest(str(area_id), area_ids)
            problems.append(doc.problem(("areas", area_id), message))
        if isinstance(texts_for_area, dict):
            texts.append((("areas", area_id), {**default, **texts_for_area}))
    for base, effective in texts:
        problems += _check_texts(doc, base, effective, data)
    return problems


def _check_texts(
    doc: Document, base: Loc, effective: dict[str, Any], data: dict[str, Any]
) -> list[RuleProblem]:
    """Check one area's (or the default's) texts, with the default filling the gaps."""
    problems = []
    own = _get(data, base)
    for key in ACK_TEXT_KEYS:
        text = own.get(key) if isinstance(own, dict) else None
        if isinstance(text, str):
            problems += [doc.problem((*base, key), m) for m in placeholder_problems(text)]
    complete = all(isinstance(effective.get(key), str) for key in ACK_TEXT_KEYS)
    if not complete:
        return problems  # the missing default text is reported once, above
    if "999" not in effective["footer"]:
        problems.append(doc.problem((*base, "footer"), "the footer must give the 999 advice"))
    for body in _ACK_BODIES:
        if "{reference}" not in effective["subject"] + effective[body]:
            problems.append(
                doc.problem((*base, body), "the subject or this text must give {reference}")
            )
    if "{missing}" not in effective["incomplete"]:
        problems.append(
            doc.problem((*base, "incomplete"), "this text must list the {missing} fields")
        )
    return problems


def _get(data: Any, loc: Loc) -> Any:
    """Return the value at `loc` in plain data, or None."""
    for part in loc:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def placeholder_problems(text: str) -> list[str]:
    """Return what is wrong with the {placeholders} of an acknowledgment text."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        return [f"malformed text: {error} (write {{{{ and }}}} for literal braces)"]
    problems = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in ACK_PLACEHOLDERS:
            allowed = ", ".join(f"{{{p}}}" for p in ACK_PLACEHOLDERS)
            problems.append(f"unknown placeholder {{{name}}}: use {allowed}")
        elif spec or conversion:
            problems.append(f"write the placeholder as {{{name}}}, without a format")
    return problems


def check_sectors(doc: Document, data: dict[str, Any]) -> list[RuleProblem]:
    """Check sectors.yaml: no domain is listed under two sectors (which one would count?)."""
    problems = []
    seen: dict[str, str] = {}
    sectors = data.get("sectors")
    for sector in sectors if isinstance(sectors, dict) else {}:
        for index, domain in strings_at(sectors, sector):
            key = domain.strip().lower().lstrip("@.")
            if key in seen and seen[key] != sector:
                message = f"{domain!r} is already listed under {seen[key]!r}"
                problems.append(doc.problem(("sectors", sector, index), message))
            seen.setdefault(key, str(sector))
    return problems
