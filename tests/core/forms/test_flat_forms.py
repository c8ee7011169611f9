"""Issue 21's reproductions: forms without section headings, read as they were before sections."""

from __future__ import annotations

import io

import docx

from router.models import Outcome
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formfactory import docx_paragraphs, table_pdf, text_pdf

FIELDS = [
    ("Full name", "Amira Khan"),
    ("Date of birth", "01/02/2001"),
    ("Home address", "1 Example Road, London"),
    ("Postcode", "SE13 6LH"),
    ("Referrer name", "Sam Referrer"),
    ("Organisation", "Example Academy"),
    ("Referrer email", "sam@school.example"),
    ("Referrer telephone", "020 7946 0000"),
    ("Describe your concerns", "Fictional concern for tests."),
    ("Consent", "Yes"),
]
LINES = [f"{label}: {value}" for label, value in FIELDS]
TITLE = "Prevent referral - please complete all sections"


def test_word_form_with_a_title_line_forwards() -> None:
    """A title before and a thank-you line after "Label: value" paragraphs are no headings:
    the organisation and contact after the referrer's name stay the referrer's."""
    lines = [TITLE, *LINES[:5], "Email address: sam@school.example", LINES[5]]
    lines += ["Contact number: 020 7946 0000", *LINES[8:], "Thank you for completing this form"]
    decision = decide("form.docx", docx_paragraphs(lines))
    assert decision.outcome == Outcome.FORWARD, decision.missing
    assert (decision.to, decision.cc) == ([MET], LEWISHAM_CC)
    assert decision.fields["referrer_organisation"] == "Example Academy"
    assert decision.fields["referrer_email"] == "sam@school.example"
    assert decision.fields["referrer_phone"] == "020 7946 0000"


def test_all_bold_word_form_forwards() -> None:
    """Every paragraph in bold, title included: nothing there is a heading."""
    document = docx.Document()
    for line in [TITLE, *LINES, "Thank you for completing this form"]:
        document.add_paragraph().add_run(line).bold = True
    buffer = io.BytesIO()
    document.save(buffer)
    decision = decide("form.docx", buffer.getvalue())
    assert decision.outcome == Outcome.FORWARD, decision.missing
    assert decision.fields["referrer_organisation"] == "Example Academy"


def test_two_column_pdf_without_colons_forwards() -> None:
    """A text PDF table, labels left and values right with no colons, under a title line:
    the person's name, address and postcode are read and the area found."""
    rows = [(TITLE, ""), *FIELDS, ("Please email this form to your local Prevent team.", "")]
    decision = decide("form.pdf", table_pdf(rows))
    assert decision.outcome == Outcome.FORWARD, decision.missing
    assert decision.area == "lewisham"
    assert decision.fields["person_name"] == "Amira Khan"
    assert decision.fields["person_address"] == "1 Example Road, London"
    assert decision.fields["person_postcode"] == "SE13 6LH"


def test_spaced_colon_pdf_with_district_forwards() -> None:
    """ "Label   :   value" with the district as the only area signal: the home address and
    the referrer's name are read too."""
    lines = [TITLE] + [
        f"{label}   :   {value}"
        for label, value in [*FIELDS[:3], ("District", "Lewisham"), *FIELDS[4:]]
    ]
    lines.append("Thank you for completing this form")
    decision = decide("form.pdf", text_pdf(lines))
    assert decision.outcome == Outcome.FORWARD, decision.missing
    assert decision.area == "lewisham"
    assert decision.fields["person_address"] == "1 Example Road, London"
    assert decision.fields["referrer_name"] == "Sam Referrer"
