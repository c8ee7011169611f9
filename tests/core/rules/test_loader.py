"""Tests of loading and checking a rules directory (router.core.rules.loader)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from router.core.rules.loader import RuleProblem, RulesError, check_rules, load_rules
from router.core.rules.model import IncompletePolicy, Rules
from tests.core.rules.conftest import BUNDLED_RULES, RulesDir

# SPEC section 6, row by row: id -> (names, districts, postcode areas, inboxes, to, cc, team)
KENT_DISTRICTS = [
    *(f"TN{n}" for n in (1, 2, 3, 4, *range(8, 19), *range(23, 31))),
    *(f"DA{n}" for n in (1, 2, 3, 4, 9, 10, 11, 12, 13)),
    "BR8",
]
SECTION_6 = {
    "lewisham": (
        ["Lewisham", "London Borough of Lewisham"],
        ["SE4", "SE6", "SE13", "SE23"],
        [],
        ["prevent@lewisham.gov.uk"],
        "preventreferrals@met.pnn.police.uk",
        ["mashagency@lewisham.gov.uk", "prevent@lewisham.gov.uk"],
        "prevent@lewisham.gov.uk",
    ),
    "kent-and-medway": (
        [
            "Kent",
            "Kent County Council",
            "Medway",
            "Medway Council",
            "Sevenoaks",
            "Tonbridge and Malling",
            "Tunbridge Wells",
            "Dartford",
            "Gravesham",
            "Maidstone",
            "Swale",
            "Ashford",
            "Folkestone and Hythe",
            "Dover",
            "Canterbury",
            "Thanet",
        ],
        KENT_DISTRICTS,
        ["CT", "ME"],
        ["prevent@kent.gov.uk"],
        "preventreferrals@kent.police.uk",
        ["prevent@kent.gov.uk"],
        "prevent@kent.gov.uk",
    ),
    "kingston": (
        ["Kingston upon Thames", "Royal Borough of Kingston", "Kingston"],
        ["KT1", "KT2", "KT3", "KT5", "KT6", "KT9"],
        [],
        [],
        "preventreferrals@met.pnn.police.uk",
        [],
        None,
    ),
    "coventry": (
        ["Coventry", "Coventry City Council"],
        ["CV1", "CV2", "CV3", "CV4", "CV5", "CV6"],
        [],
        ["prevent@coventry.gov.uk"],
        "prevent@coventry.gov.uk",
        [],
        "prevent@coventry.gov.uk",
    ),
}

# A small, valid area file whose line numbers the tests below rely on.
AREA = """\
# A test area.
names:
  - Testshire
postcodes:
  districts: [AB1, AB2, AB3]
  areas: [ZE]
inboxes:
  - prevent@testshire.gov.uk
to: prevent@testshire.police.uk
cc:
  - mash@testshire.gov.uk
  - prevent@testshire.gov.uk
team: prevent@testshire.gov.uk
"""


def area(**replace: str) -> str:
    """The AREA text with some exact substrings replaced."""
    text = AREA
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_bundled_rules_load_without_problems() -> None:
    """The rules shipped in the repository pass `rules check`."""
    assert check_rules(BUNDLED_RULES) == []


def test_bundled_areas_are_section_6_exactly(bundled_rules: Rules) -> None:
    """Each bundled area has exactly the names, postcodes and addresses of SPEC section 6."""
    areas = {area.id: area for area in bundled_rules.areas}
    assert sorted(areas) == sorted(SECTION_6)
    for area_id, (names, districts, letters, inboxes, to, cc, team) in SECTION_6.items():
        loaded = areas[area_id]
        assert loaded.names == names, area_id
        assert loaded.postcodes.districts == districts, area_id
        assert loaded.postcodes.areas == letters, area_id
        assert loaded.inboxes == inboxes, area_id
        assert loaded.to == to, area_id
        assert loaded.cc == cc, area_id
        assert loaded.team == team, area_id
        assert loaded.incomplete_policy is IncompletePolicy.TEAM
    assert "0208 547 5008" in areas["kingston"].notes


def test_bundled_forms_and_acknowledgments(bundled_rules: Rules) -> None:
    """The bundled forms.yaml and acknowledgments.yaml carry the SPEC's defaults."""
    forms = bundled_rules.forms
    assert forms.required == [
        "person_name",
        "person_dob",
        "person_address",
        "concern",
        "referrer_name",
        "referrer_organisation",
        "referrer_contact",
    ]
    assert ["Forename(s)", "Surname"] in forms.composite["person_name"]
    assert {"N/A", "none", "unknown", "-", "TBC", "?"} <= set(forms.placeholders)
    acks = bundled_rules.acknowledgments
    assert acks.default.subject == "Prevent referral received: {reference}"
    assert acks.default.footer is not None
    assert "If anyone is in immediate danger, call 999." in acks.default.footer
    assert acks.daily_limit_per_sender == 20


def test_version_is_a_content_hash(rules_copy: RulesDir) -> None:
    """The version is a SHA-256 that is stable across loads and changes with any file."""
    first = rules_copy.load().version
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert rules_copy.load().version == first
    rules_copy.edit("areas/kingston.yaml", "notes: >-", "notes: >-\n  Edited.")
    assert rules_copy.load().version != first


def test_postcodes_are_normalised(rules_copy: RulesDir) -> None:
    """Postcodes in the loaded rules are upper-case without spaces, whatever the file says."""
    text = area(**{"[AB1, AB2, AB3]": "[ab1, ' Ab 2', AB3]", "[ZE]": "[ze]"})
    rules_copy.write("areas/testshire.yaml", text)
    loaded = {a.id: a for a in rules_copy.load().areas}["testshire"]
    assert loaded.postcodes.districts == ["AB1", "AB2", "AB3"]
    assert loaded.postcodes.areas == ["ZE"]
    assert loaded.id == "testshire"


def test_load_rules_raises_with_every_problem(rules_copy: RulesDir) -> None:
    """load_rules raises RulesError listing problems from several files at once."""
    rules_copy.write("areas/testshire.yaml", area(**{"AB2": "A2B2", "mash@": "mash at "}))
    rules_copy.edit("forms.yaml", "  person_dob:", "  person_dobb:")
    with pytest.raises(RulesError) as raised:
        load_rules(rules_copy.path)
    problems = [str(p) for p in raised.value.problems]
    assert any(p.startswith("areas/testshire.yaml:5: postcodes.districts[1]:") for p in problems)
    assert any(p.startswith("areas/testshire.yaml:11: cc[0]:") for p in problems)
    assert any(p.startswith("forms.yaml:") and "person_dobb" in p for p in problems)
    assert "3 problems in the rules" in str(raised.value)


def test_rule_problem_text() -> None:
    """A problem prints as file:line: field: message, leaving out what is unknown."""
    problem = RuleProblem(
        file="areas/lewisham.yaml",
        line=7,
        field="postcodes.districts[2]",
        message="'SE1Z' is not a postcode district",
    )
    assert str(problem) == (
        "areas/lewisham.yaml:7: postcodes.districts[2]: 'SE1Z' is not a postcode district"
    )
    assert str(RuleProblem(file="forms.yaml", message="required file is missing")) == (
        "forms.yaml: required file is missing"
    )


def test_check_rules_on_a_missing_directory(tmp_path: Path) -> None:
    """A directory that does not exist is one problem, not a crash."""
    problems = check_rules(tmp_path / "nowhere")
    assert [str(p) for p in problems] == [
        ".: rules directory not found (ROUTER_RULES_DIR, or --rules for route, chooses another)"
    ]
