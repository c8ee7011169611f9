"""Repeated labels ("Name", "Email", "Telephone") map by the section of the form they sit in."""

from __future__ import annotations

import io

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.forms.read import read_attachment
from router.core.rules.loader import load_rules
from router.core.rules.model import FormRules
from router.models import AttachmentKind, FormReading, FormStatus
from tests.conftest import ROOT
from tests.core.forms.decide import decide
from tests.formfactory import attachment, fillable_pdf
from tests.formlayouts import SECTIONED_LAYOUTS, Sections, sectioned_form

RULES = load_rules(ROOT / "rules").forms

PERSON_ROWS = [
    ("Name", "Amira Khan"),
    ("Date of birth", "01/02/2001"),
    ("Email", "amira@person.example"),
    ("Telephone", "07700 900123"),
    ("Address", "1 Example Road, London SE13 6LH"),
]
REFERRER_ROWS = [
    ("Name", "Sam Referrer"),
    ("Email", "sam@school.example"),
    ("Telephone", "020 7946 0000"),
    ("Organisation", "Example Academy"),
]
EXPECTED = {
    "person_name": "Amira Khan",
    "person_dob": "01/02/2001",
    "person_address": "1 Example Road, London SE13 6LH",
    "referrer_name": "Sam Referrer",
    "referrer_email": "sam@school.example",
    "referrer_phone": "020 7946 0000",
    "referrer_organisation": "Example Academy",
}


def read(sections: Sections, layout: str, rules: FormRules = RULES) -> FormReading:
    """Build a sectioned form in `layout` and read it with `rules`."""
    data, kind = sectioned_form(sections, layout)
    return read_attachment(attachment(data, kind, "form"), rules)


@pytest.mark.parametrize("layout", SECTIONED_LAYOUTS)
@pytest.mark.parametrize("referrer_first", [False, True])
def test_national_form_sections(layout: str, referrer_first: bool) -> None:
    """The individual's and the referrer's Name/Email/Telephone each go to their own side."""
    sections = [
        ("Section 1: Details of the individual", PERSON_ROWS),
        ("Section 2: Referrer details", REFERRER_ROWS),
    ]
    if referrer_first:
        sections.reverse()
    reading = read(sections, layout)
    assert reading.status == FormStatus.FORM
    assert reading.fields == EXPECTED


@pytest.mark.parametrize("layout", ["docx_table", "text_pdf"])
def test_unheaded_first_block_is_not_the_referrer(layout: str) -> None:
    """With only a referrer heading, the person's email above it is not referrer contact."""
    rows = [*PERSON_ROWS, ("Postcode", "SE13 6LH")]
    referrer = [("Name", "Sam Referrer"), ("Organisation", "Example Academy")]
    reading = read([("Prevent referral", rows), ("Referrer details", referrer)], layout)
    assert reading.fields["referrer_name"] == "Sam Referrer"
    assert "referrer_email" not in reading.fields
    assert "referrer_phone" not in reading.fields
    assert reading.fields["person_name"] == "Amira Khan"


def test_parent_section_is_nobodys() -> None:
    """A parent/carer section's Name and Address are neither the person's nor the referrer's."""
    parent = [("Name", "Pat Parent"), ("Address", "9 Other Street, Leeds LS1 1AA")]
    reading = read(
        [
            ("Details of the individual's parent/carer", parent),
            ("Details of the individual", PERSON_ROWS),
            ("Your details", REFERRER_ROWS),
        ],
        "docx_table",
    )
    assert reading.fields == EXPECTED


def test_admins_add_section_wordings() -> None:
    """A heading wording added to the rules' `sections` decides whose rows follow."""
    sections = [
        ("Section A", PERSON_ROWS),
        ("Section B: Practitioner", [("Name", "Sam Referrer"), ("Email", "sam@school.example")]),
    ]
    before = read(sections, "text_pdf")
    assert "referrer_name" not in before.fields
    wordings = RULES.sections.model_copy(update={"referrer": ["Practitioner"]})
    after = read(sections, "text_pdf", RULES.model_copy(update={"sections": wordings}))
    assert after.fields["referrer_name"] == "Sam Referrer"
    assert after.fields["person_name"] == "Amira Khan"


# Hypothesis: labels drawn from the rules, random section order, random layout.
_CONTACT = {
    "email": ["Email", "Email address", "E-mail"],
    "phone": ["Telephone", "Phone", "Mobile"],
}
_PERSON_LABELS = {
    "person_name": RULES.labels["person_name"],
    "person_dob": RULES.labels["person_dob"],
    "person_address": [*RULES.labels["person_address"], "Address"],
    "email": _CONTACT["email"],
    "phone": _CONTACT["phone"],
}
_REFERRER_LABELS = {
    "referrer_name": ["Name", "Full name", *RULES.labels["referrer_name"]],
    "referrer_email": [*_CONTACT["email"], *RULES.labels["referrer_email"]],
    "referrer_phone": [*_CONTACT["phone"], *RULES.labels["referrer_phone"]],
    "referrer_organisation": RULES.labels["referrer_organisation"],
}
_VALUES = {
    "person_name": "Bethany Cole",
    "person_dob": "02/03/2004",
    "person_address": "2 Sample Street, London SE4 1AA",
    "email": "bethany@person.example",
    "phone": "07700 900456",
    "referrer_name": "Robin Teacher",
    "referrer_email": "robin@college.example",
    "referrer_phone": "020 7946 0999",
    "referrer_organisation": "Sample College",
}


def _section(labels: dict[str, list[str]], headings: list[str]) -> st.SearchStrategy:
    """One section: a heading from the rules, then a row per field in random order."""
    rows = st.fixed_dictionaries(
        {field: st.sampled_from(options) for field, options in labels.items()}
    )
    numbered = st.sampled_from(["", "Section 1: ", "Part B - ", "2. "])
    return st.tuples(numbered, st.sampled_from(headings), rows, st.randoms())


_OTHER_ROWS = [
    ("Name", "Pat Guardian"),
    ("Email", "pat@family.example"),
    ("Telephone", "07700 900999"),
    ("Address", "9 Other Street, Leeds LS1 1AA"),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    person=_section(_PERSON_LABELS, RULES.sections.person),
    referrer=_section(_REFERRER_LABELS, RULES.sections.referrer),
    referrer_first=st.booleans(),
    layout=st.sampled_from(SECTIONED_LAYOUTS),
    parent=st.one_of(
        st.none(), st.tuples(st.sampled_from(RULES.sections.other), st.integers(0, 2))
    ),
)
def test_sections_never_swap_sides(person, referrer, referrer_first, layout, parent) -> None:  # type: ignore[no-untyped-def]
    """Generated sectioned forms: each value reaches its own canonical field or none at all;
    a parent/carer or other-agency section's details reach no field."""
    sections = []
    for number, heading, labels, shuffle in (person, referrer):
        rows = [(label, _VALUES[field]) for field, label in labels.items()]
        shuffle.shuffle(rows)
        sections.append((number + heading, rows))
    if referrer_first:
        sections.reverse()
    if parent is not None:
        heading, position = parent
        sections.insert(position, (heading, _OTHER_ROWS))
    reading = read(sections, layout)
    assert reading.status == FormStatus.FORM
    for field, value in reading.fields.items():
        assert _VALUES.get(field) == value, (field, value)
    assert reading.fields.get("person_name") == _VALUES["person_name"]
    assert reading.fields.get("referrer_name") == _VALUES["referrer_name"]


def test_bundled_section_wordings_are_not_labels() -> None:
    """No bundled section heading reads as a field label (it would swallow the next value)."""
    from router.core.forms.read import label_map_for

    labels = label_map_for(RULES)
    wordings = [*RULES.sections.person, *RULES.sections.referrer, *RULES.sections.other]
    assert [text for text in wordings if labels.match(text) is not None] == []


def test_acrobat_numbered_repeats_are_never_merged() -> None:
    """ "Name" and "Name_2" fields with nothing saying whose: never one person's joined name,
    never the person's email as the referrer's; the form goes to the team as incomplete."""
    fields = {
        "Name": "Amira Khan",
        "Date of birth": "01/02/2001",
        "Email": "amira@person.example",
        "Address": "1 Example Road, London SE13 6LH",
        "Describe your concerns": "Fictional concern for tests.",
        "Name_2": "Sam Referrer",
        "Email_2": "sam@school.example",
        "Organisation": "Example Academy",
    }
    decision = decide("form.pdf", fillable_pdf(fields))
    assert decision.outcome.value == "incomplete"
    assert "Sam Referrer" not in decision.fields.values()
    assert "amira@person.example" not in decision.fields.values()
    assert decision.fields["person_address"] == "1 Example Road, London SE13 6LH"
    assert {"person_name", "referrer_name", "referrer_contact"} <= set(decision.missing)


def test_word_heading_style_ends_a_section() -> None:
    """A Word heading that names no side ends the referrer's section: a parent's Email after
    it is not the referrer's."""
    document = docx.Document()
    document.add_heading("Your details", level=1)
    document.add_paragraph("Name: Sam Referrer")
    document.add_heading("Further information", level=1)
    document.add_paragraph("Email: parent@family.example")
    document.add_paragraph("Details of the individual")
    document.add_paragraph("Name: Amira Khan")
    buffer = io.BytesIO()
    document.save(buffer)
    reading = read_attachment(attachment(buffer.getvalue(), AttachmentKind.DOCX, "f"), RULES)
    assert reading.fields == {"referrer_name": "Sam Referrer", "person_name": "Amira Khan"}
