"""Outlook .msg, Excel .xls and Word .doc attachments: each told apart and handled as what it is."""

from __future__ import annotations

import pytest

from router.models import Outcome
from tests.cfbwriter import compound_file, embedded_msg, outlook_msg
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formfactory import complete_referral, docx_table, labelled
from tests.formlayouts import docx_variant


def test_form_inside_outlook_msg_is_forwarded() -> None:
    """A form attached to an Outlook item (sent as .msg) is read and forwarded."""
    form = docx_table(list(labelled(complete_referral()).items()))
    msg = outlook_msg("FW: referral", "Please see the attached form.", [("Prevent.docx", form)])
    decision = decide("FW referral.msg", msg, "application/vnd.ms-outlook")
    assert decision.outcome == Outcome.FORWARD
    assert (decision.area, decision.to, decision.cc) == ("lewisham", [MET], LEWISHAM_CC)
    assert decision.fields == complete_referral()
    assert decision.form == "Prevent.docx"


def test_form_in_a_msg_inside_a_msg() -> None:
    """An Outlook item attached inside another is opened too."""
    form = docx_table(list(labelled(complete_referral()).items()))
    inner = embedded_msg("referral", "form attached", [("form.docx", form)])
    decision = decide("fwd.msg", outlook_msg("FW: FW: referral", "see below", [("item", inner)]))
    assert decision.outcome == Outcome.FORWARD
    assert decision.fields == complete_referral()


def test_form_typed_into_the_msg_body() -> None:
    """A .msg whose body is the form (Label: value lines) is read as the form."""
    body = "\r\n".join(
        f"{label}: {value}" for label, value in labelled(complete_referral()).items()
    )
    decision = decide("referral.msg", outlook_msg("Referral", body))
    assert decision.outcome == Outcome.FORWARD
    assert decision.fields == complete_referral()


def test_xls_is_named_as_a_spreadsheet() -> None:
    """An Excel workbook goes to review as a spreadsheet, not as a Word document."""
    decision = decide("referral.xls", compound_file({"Workbook": b"\x09\x08" + b"\0" * 700}))
    assert decision.outcome == Outcome.NEEDS_REVIEW
    assert "Excel" in decision.reason
    assert "Word" not in decision.reason


def test_doc_is_still_legacy_word() -> None:
    """A Word 97-2003 document is still reported as legacy Word."""
    decision = decide("referral.doc", compound_file({"WordDocument": b"\xec\xa5" + b"\0" * 700}))
    assert decision.outcome == Outcome.NEEDS_REVIEW
    assert "legacy Word .doc" in decision.reason


@pytest.mark.parametrize("variant", ["docm", "strict"])
def test_docm_and_strict_docx_are_read(variant: str) -> None:
    """A macro-enabled .docm and a Strict Open XML .docx read like any .docx."""
    form = docx_variant(docx_table(list(labelled(complete_referral()).items())), variant)
    decision = decide(f"form.{variant}", form)
    assert decision.outcome == Outcome.FORWARD
    assert (decision.area, decision.to, decision.cc) == ("lewisham", [MET], LEWISHAM_CC)
    assert decision.fields == complete_referral()
