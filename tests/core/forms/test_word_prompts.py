"""Word content controls still showing their prompt, and unfilled legacy fields, are blank."""

from __future__ import annotations

import io

import docx
import pytest
from docx.oxml import parse_xml

from router.models import Outcome
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formfactory import docx_paragraphs
from tests.formlayouts import W_NS, docx_controls, word_control

FILLED = [
    ("Name", "Amira Khan"),
    ("Date of birth", "01/02/2001"),
    ("Address", "1 Example Road, London SE13 6LH"),
    ("Describe your concerns", "Fictional concern for tests."),
    ("Referrer name", "Sam Referrer"),
    ("Organisation", "Example Academy"),
    ("Email address", "sam@school.example"),
]


@pytest.mark.parametrize("control", ["sdt", "formtext"])
@pytest.mark.parametrize("table", [False, True])
def test_unfilled_controls_are_missing(control: str, table: bool) -> None:
    """A prompt or default blanks never count as an answer, nor push the next line up."""
    rows = [(label, value, control) for label, value in FILLED]
    rows[1] = ("Date of birth", None, control)
    rows[6] = ("Email address", None, control)
    decision = decide("form.docx", docx_controls(rows, table))
    assert decision.outcome == Outcome.INCOMPLETE
    assert decision.missing == ["person_dob", "referrer_contact"]
    assert decision.fields == {
        "person_name": "Amira Khan",
        "person_address": "1 Example Road, London SE13 6LH",
        "concern": "Fictional concern for tests.",
        "referrer_name": "Sam Referrer",
        "referrer_organisation": "Example Academy",
    }
    assert decision.to == ["prevent@lewisham.gov.uk"]


@pytest.mark.parametrize("control", ["sdt", "formtext"])
@pytest.mark.parametrize("table", [False, True])
def test_filled_controls_are_read(control: str, table: bool) -> None:
    """Values typed into content controls and legacy fields are read as before."""
    rows = [(label, value, control) for label, value in FILLED]
    decision = decide("form.docx", docx_controls(rows, table))
    assert decision.outcome == Outcome.FORWARD
    assert (decision.to, decision.cc) == ([MET], LEWISHAM_CC)
    assert decision.fields["person_dob"] == "01/02/2001"
    assert decision.fields["referrer_email"] == "sam@school.example"


def test_legacy_field_default_text_and_blanks_before_a_hint() -> None:
    """A FORMTEXT still holding its default text, or blanks above a hint line, is blank."""
    lines = [f"{label}: {value}" for label, value in FILLED]
    document = docx.Document(io.BytesIO(docx_paragraphs(lines)))
    body = document.element.body
    for position, (label, default) in enumerate([("Telephone", ""), ("Gender", "Enter gender")]):
        xml = f'<w:p {W_NS}><w:r><w:t xml:space="preserve">{label}: </w:t></w:r>'
        xml += word_control(None, "formtext", default) + "</w:p>"
        body.insert(position * 2, parse_xml(xml))
        hint = f"<w:p {W_NS}><w:r><w:t>(as on file)</w:t></w:r></w:p>"
        body.insert(position * 2 + 1, parse_xml(hint))
    buffer = io.BytesIO()
    document.save(buffer)
    decision = decide("form.docx", buffer.getvalue())
    assert "person_gender" not in decision.fields
    assert "referrer_phone" not in decision.fields
    assert decision.outcome == Outcome.FORWARD
