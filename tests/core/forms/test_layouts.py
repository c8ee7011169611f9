"""Text layers as people and tools really lay them out: spaced colons, dotted leaders, blanks."""

from __future__ import annotations

from router.models import Outcome
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formfactory import docx_paragraphs, text_pdf

REFERRER = [
    "Referrer name   :   Sam Referrer",
    "Referrer organisation   :   Example Academy",
    "Referrer email   :   sam@school.example",
]


def test_spaced_colons() -> None:
    """ "Name   :   Bethany Cole" gives the name, never ":" as the value."""
    lines = [
        "Name   :   Bethany Cole",
        "Date of birth   :   02/03/2004",
        "Address   :   2 Sample Street, London SE4 1AA",
        "Describe your concerns   :   Fictional concern for tests.",
        *REFERRER,
    ]
    decision = decide("form.pdf", text_pdf(lines))
    assert decision.outcome == Outcome.FORWARD
    assert (decision.area, decision.to, decision.cc) == ("lewisham", [MET], LEWISHAM_CC)
    assert decision.fields["person_name"] == "Bethany Cole"
    assert decision.fields["person_dob"] == "02/03/2004"
    assert decision.missing == []


def test_dotted_leaders() -> None:
    """Leader dots separate label and value; a row of only dots is a blank answer."""
    lines = [
        "Name of person ........ Amira Khan",
        "Date of birth .................. 01/02/2001",
        "Address ...........................",
        "Postcode ........ SE13 6LH",
        "Reason for referral ....... Fictional concern for tests.",
        "Referrer name ....... Sam Referrer",
        "Organisation ....... Example Academy",
        "Email address ....... sam@school.example",
    ]
    decision = decide("form.pdf", text_pdf(lines))
    assert decision.fields == {
        "person_name": "Amira Khan",
        "person_dob": "01/02/2001",
        "person_postcode": "SE13 6LH",
        "concern": "Fictional concern for tests.",
        "referrer_name": "Sam Referrer",
        "referrer_organisation": "Example Academy",
        "referrer_email": "sam@school.example",
    }
    assert decision.outcome == Outcome.FORWARD
    assert decision.area == "lewisham"


def test_punctuation_only_values_are_missing() -> None:
    """Underscores, leader dots and a lone colon are blank answers: the form is incomplete."""
    lines = [
        "Name: Amira Khan",
        "Date of birth: __________",
        "Address: 1 Example Road, London SE13 6LH",
        "Concerns: Fictional concern for tests.",
        "Referrer name: Sam Referrer",
        "Organisation: Example Academy",
        "Email address: .............",
        "Telephone  :  ",
    ]
    for data, name in ((text_pdf(lines), "form.pdf"), (docx_paragraphs(lines), "form.docx")):
        decision = decide(name, data)
        assert decision.outcome == Outcome.INCOMPLETE, name
        assert decision.missing == ["person_dob", "referrer_contact"], name
        assert "person_dob" not in decision.fields
        assert decision.to == ["prevent@lewisham.gov.uk"]
