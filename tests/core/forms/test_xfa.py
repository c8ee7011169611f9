"""XFA forms (Adobe LiveCycle): answers kept only in the XFA datasets packet are read."""

from __future__ import annotations

from router.models import Outcome
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formlayouts import xfa_pdf

DATA = (
    "<form1><IndividualDetails><Name>Amira Khan</Name><DateOfBirth>01/02/2001</DateOfBirth>"
    "<Email>amira@person.example</Email><HomeAddress>1 Example Road, London</HomeAddress>"
    "<Postcode>SE13 6LH</Postcode></IndividualDetails>"
    "<Concerns><DescribeConcerns>Fictional concern for tests.</DescribeConcerns></Concerns>"
    "<ReferrerDetails><Name>Sam Referrer</Name><Organisation>Example Academy</Organisation>"
    "<Email>sam@school.example</Email><Telephone/></ReferrerDetails></form1>"
)
NAMES = [
    "form1[0].IndividualDetails[0].Name[0]",
    "form1[0].IndividualDetails[0].DateOfBirth[0]",
    "form1[0].ReferrerDetails[0].Name[0]",
]


def test_xfa_datasets_are_read_when_fields_are_empty() -> None:
    """Values in the XFA data packet are mapped by element name and enclosing section."""
    decision = decide("form.pdf", xfa_pdf(DATA, NAMES))
    assert decision.outcome == Outcome.FORWARD
    assert (decision.area, decision.to, decision.cc) == ("lewisham", [MET], LEWISHAM_CC)
    assert decision.fields == {
        "person_name": "Amira Khan",
        "person_dob": "01/02/2001",
        "person_address": "1 Example Road, London",
        "person_postcode": "SE13 6LH",
        "concern": "Fictional concern for tests.",
        "referrer_name": "Sam Referrer",
        "referrer_organisation": "Example Academy",
        "referrer_email": "sam@school.example",
    }


def test_broken_xfa_packet_never_raises() -> None:
    """A datasets packet that is not XML leaves the form as its (empty) fields say."""
    decision = decide("form.pdf", xfa_pdf("<form1><Name>unclosed", NAMES))
    assert decision.outcome in (Outcome.INCOMPLETE, Outcome.NEEDS_REVIEW)
    assert "person_name" not in decision.fields
