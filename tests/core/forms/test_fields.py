"""Label normalisation, canonical mapping, sections and the missing-fields rule."""

from __future__ import annotations

import pytest

from router.core.forms.fields import (
    PERSON,
    REFERRER,
    LabelMap,
    clean_fields,
    is_placeholder,
    missing_fields,
    normalise_label,
    section_role,
)
from tests.formfactory import FORM_RULES_DATA, complete_referral, default_form_rules

PREFIXES = list(FORM_RULES_DATA["prefixes"])  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def labels() -> LabelMap:
    """A label map over the SPEC section 5 labels."""
    return LabelMap(default_form_rules())


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("txtDOB", "dob"),
        ("Referrer_Email", "referrer email"),
        ("fldPostcode", "postcode"),
        ("D.O.B.", "dob"),
        ("Date of Birth:", "date of birth"),
        ("Forename(s)", "forename"),
        ("Referrer's name", "referrer name"),
        ("3. Name of person being referred *", "name of person being referred"),
        ("txtReferrerName", "referrer name"),
        ("chkConsent", "consent"),
        ("E-mail address", "email"),
        ("Telephone number", "phone"),
        ("TB Status", "tb status"),
        ("Optional", "optional"),
        ("", ""),
    ],
)
def test_normalise_label(label: str, expected: str) -> None:
    """Case, punctuation, camelCase, machine prefixes and spelling variants are folded."""
    assert normalise_label(label, PREFIXES) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Name", "person_name"),
        ("Full name", "person_name"),
        ("NAME OF PERSON BEING REFERRED", "person_name"),
        ("txtDOB", "person_dob"),
        ("D.O.B.", "person_dob"),
        ("Sex", "person_gender"),
        ("Current address", "person_address"),
        ("fldPostcode", "person_postcode"),
        ("Post code", "person_postcode"),
        ("Borough", "local_authority"),
        ("Concerns", "concern"),
        ("Concern(s)", "concern"),
        ("Describe your concerns", "concern"),
        ("Please describe your concerns about the individual", "concern"),
        ("Reason for referral", "concern"),
        ("Referrer name", "referrer_name"),
        ("Referrer_Name", "referrer_name"),
        ("Your name", "referrer_name"),
        ("Referrer full name", "referrer_name"),
        ("Referrer_Email", "referrer_email"),
        ("Email address", "referrer_email"),
        ("Email", "referrer_email"),
        ("Your phone number", "referrer_phone"),
        ("Telephone", "referrer_phone"),
        ("Contact number", "referrer_phone"),
        ("Agency", "referrer_organisation"),
        ("Is the person aware of the referral?", "consent"),
        ("Name of the person being referred (include any aliases)", "person_name"),
        ("Person's name", "person_name"),
        ("Name of school", None),
        ("Referrer address", None),
        ("Person's email", None),
        ("Date", None),
        ("Forename(s)", None),  # a composite part, not a whole field
    ],
)
def test_canonical(labels: LabelMap, label: str, expected: str | None) -> None:
    """Labels, machine names and longer questions map to the right canonical field."""
    assert labels.canonical(label) == expected


def test_section_changes_generic_labels(labels: LabelMap) -> None:
    """Generic labels belong to the section they sit in; explicit labels keep their meaning."""
    assert labels.canonical("Name", REFERRER) == "referrer_name"
    assert labels.canonical("Address", REFERRER) is None
    assert labels.canonical("Date of birth", REFERRER) is None
    assert labels.canonical("Email", PERSON) is None
    assert labels.canonical("Organisation", PERSON) is None
    assert labels.canonical("Referrer email", PERSON) == "referrer_email"
    assert labels.canonical("Name", PERSON) == "person_name"


@pytest.mark.parametrize(
    ("heading", "role"),
    [
        ("Referrer details", REFERRER),
        ("Your details", REFERRER),
        ("About you", REFERRER),
        ("Person making the referral", REFERRER),
        ("Details of the person being referred", PERSON),
        ("Individual's details", PERSON),
        ("Section 3: Other agencies involved", None),
    ],
)
def test_section_role(heading: str, role: str | None) -> None:
    """Section headings name whose details follow."""
    assert section_role(heading) == role


@pytest.mark.parametrize("value", ["", "   ", "N/A", "n/a", "None", "UNKNOWN", "-", "tbc", "?"])
def test_placeholders(value: str) -> None:
    """Empty, whitespace and placeholder values count as missing."""
    assert is_placeholder(value, default_form_rules().placeholders)


def test_real_values_are_not_placeholders() -> None:
    """Ordinary answers are not placeholders."""
    for value in ("Jane", "No", "0", "Nonesuch Road"):
        assert not is_placeholder(value, default_form_rules().placeholders)


def test_complete_referral_has_nothing_missing() -> None:
    """The factory's complete referral satisfies every required field."""
    assert missing_fields(complete_referral(), default_form_rules()) == []


def test_missing_in_rules_order() -> None:
    """Missing fields are reported in the order of `required`, placeholders included."""
    fields = complete_referral(concern="N/A", person_name=None, referrer_organisation=" ")
    assert missing_fields(fields, default_form_rules()) == [
        "person_name",
        "concern",
        "referrer_organisation",
    ]


def test_referrer_contact_by_phone_only() -> None:
    """A referrer phone alone satisfies referrer_contact; neither leaves it missing."""
    rules = default_form_rules()
    assert missing_fields(complete_referral(referrer_email=None), rules) == []
    both_gone = complete_referral(referrer_email="unknown", referrer_phone=None)
    assert missing_fields(both_gone, rules) == ["referrer_contact"]


def test_person_address_by_postcode_only() -> None:
    """A postcode alone satisfies person_address; neither leaves it missing."""
    rules = default_form_rules()
    assert missing_fields(complete_referral(person_address=None), rules) == []
    both_gone = complete_referral(person_address=None, person_postcode="-")
    assert missing_fields(both_gone, rules) == ["person_address"]


def test_clean_fields_drops_placeholders() -> None:
    """clean_fields keeps only real answers."""
    fields = {"person_name": "Jane", "concern": "TBC", "consent": ""}
    assert clean_fields(fields, default_form_rules()) == {"person_name": "Jane"}


def test_remembered_labels_are_bounded_and_agree() -> None:
    """`LabelMap.normalise` remembers short labels (the same form's come every time) within
    a bound, and a remembered answer is the one it would work out again."""
    from router.core.forms import fields

    label_map = LabelMap(default_form_rules())
    first = label_map.normalise("txtReferrer_Email")
    assert label_map.normalise("txtReferrer_Email") == first == "referrer email"
    for number in range(fields._MEMO_LABELS + 10):
        label_map.normalise(f"Question {number}")
    assert 0 < len(label_map._normalised) <= fields._MEMO_LABELS
    long_label = "Describe your concerns " * 10
    assert label_map.normalise(long_label) == normalise_label(long_label, PREFIXES)
    assert long_label not in label_map._normalised
