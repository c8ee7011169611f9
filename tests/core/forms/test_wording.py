"""Acknowledgments and team notices name missing fields in the form's words, never canonically."""

from __future__ import annotations

import email
import email.policy

from router.core.compose import compose_ack, compose_forward
from router.core.forms.fields import FIELD_WORDING
from router.core.mail.parse import parse_message
from router.models import CANONICAL_FIELDS, Outcome
from tests.core.forms.decide import ENGINE, decide
from tests.formfactory import complete_referral, docx_table, labelled
from tests.mailfactory import build_email

CANONICAL = {*CANONICAL_FIELDS, "referrer_contact"}


def _text(data: bytes) -> str:
    """The text/plain body of a composed mail."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_every_required_field_has_wording() -> None:
    """Each field the rules can report missing has the form's words for it."""
    assert set(ENGINE.rules.forms.required) <= set(FIELD_WORDING)


def test_ack_and_team_notice_use_the_forms_words() -> None:
    """An incomplete referral's acknowledgment and team notice list the missing fields as
    the form words them; `missing` in the decision stays canonical (SPEC section 7)."""
    fields = complete_referral(person_dob=None, referrer_email=None, referrer_phone=None)
    data = docx_table(list(labelled(fields).items()))
    decision = decide("form.docx", data)
    assert decision.outcome == Outcome.INCOMPLETE
    assert decision.missing == ["person_dob", "referrer_contact"]
    original = parse_message(build_email(attachments=[("form.docx", data, "application/x")]))
    ack = compose_ack(
        decision,
        "PR-1-1",
        original,
        ENGINE.rules.acknowledgments,
        sender="referrals@router.example",
        area_name="Lewisham",
    )
    notice = compose_forward(
        decision, "PR-1-1", original, b"", [], sender="referrals@router.example"
    )
    for text in (_text(ack.data), _text(notice.data)):
        assert "date of birth of the person referred" in text
        assert "your email address or telephone number" in text
        assert not [name for name in CANONICAL if name in text]
