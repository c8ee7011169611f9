"""The routing engine on its own: readings and a parsed message in, decisions out (SPEC 3, 4)."""

from __future__ import annotations

from datetime import date

import pytest

from router.core.mail.parse import ParsedMessage
from router.core.routing import RoutingEngine
from router.core.rules.loader import load_rules
from router.models import AttachmentKind, FormReading, FormStatus, Outcome
from tests.conftest import ROOT

REVIEW = "review@router.example"
MET = "preventreferrals@met.pnn.police.uk"
KENT = "preventreferrals@kent.police.uk"
LEWISHAM_INBOX = "prevent@lewisham.gov.uk"
LEWISHAM_CC = ["mashagency@lewisham.gov.uk", "prevent@lewisham.gov.uk"]
REFERRER = "teacher@school.example"

COMPLETE = {
    "person_name": "Sam Example",
    "person_dob": "01/02/2010",
    "person_address": "1 High Street, London",
    "person_postcode": "SE13 6LH",
    "concern": "Shared extremist material in class.",
    "referrer_name": "Alex Teacher",
    "referrer_organisation": "Example School",
    "referrer_email": "alex@school.example",
}


@pytest.fixture(scope="module")
def engine() -> RoutingEngine:
    """The bundled rules, on a fixed day so ages do not drift."""
    return RoutingEngine(load_rules(ROOT / "rules"), review_address=REVIEW, today=date(2026, 12, 7))


def _message(*recipients: str) -> ParsedMessage:
    return ParsedMessage(from_address=REFERRER, recipients=list(recipients or [LEWISHAM_INBOX]))


def _form(**fields: str) -> FormReading:
    values = {k: v for k, v in {**COMPLETE, **fields}.items() if v}
    return FormReading(
        attachment_index=0,
        filename="form.pdf",
        kind=AttachmentKind.PDF,
        status=FormStatus.FORM,
        fields=values,
    )


def test_complete_form_is_forwarded_to_its_force_with_the_mandatory_copies(
    engine: RoutingEngine,
) -> None:
    """A complete Lewisham form goes to the Met, copying Lewisham's MASH and Prevent team,
    and the sender is acknowledged."""
    [decision] = engine.decide(_message(), [_form()])
    assert decision.outcome is Outcome.FORWARD
    assert (decision.area, decision.signal) == ("lewisham", "postcode")
    assert decision.to == [MET]
    assert sorted(decision.cc) == sorted(LEWISHAM_CC)
    assert decision.ack_to == REFERRER


def test_postcode_beats_the_inbox_and_the_inbox_team_is_copied(engine: RoutingEngine) -> None:
    """A Kent postcode sent to Lewisham's inbox goes to Kent Police, and Lewisham's Prevent
    team is copied so the receiving council keeps sight of it."""
    [decision] = engine.decide(_message(), [_form(person_postcode="CT1 1AA")])
    assert decision.outcome is Outcome.FORWARD
    assert decision.area == "kent-and-medway"
    assert decision.to == [KENT]
    assert "prevent@lewisham.gov.uk" in decision.cc


def test_a_postcode_outside_every_area_goes_to_the_inbox_team_for_review(
    engine: RoutingEngine,
) -> None:
    """A Leeds postcode is never forwarded on the strength of the inbox: a person decides."""
    [decision] = engine.decide(
        _message(), [_form(person_postcode="LS1 4AP", person_address="1 Street, Leeds")]
    )
    assert decision.outcome is Outcome.NEEDS_REVIEW
    assert decision.area == "lewisham"
    assert MET not in decision.to + decision.cc


def test_missing_fields_go_to_the_council_team_never_the_police(engine: RoutingEngine) -> None:
    """An incomplete form names its missing fields and goes to the area's Prevent team."""
    [decision] = engine.decide(_message(), [_form(referrer_organisation="", concern="N/A")])
    assert decision.outcome is Outcome.INCOMPLETE
    assert sorted(decision.missing) == ["concern", "referrer_organisation"]
    assert decision.to == ["prevent@lewisham.gov.uk"]
    assert MET not in decision.to + decision.cc


def test_no_signal_and_an_unknown_inbox_goes_to_the_review_address(engine: RoutingEngine) -> None:
    """With no postcode, no authority and an inbox no area lists, the operator reviews it."""
    [decision] = engine.decide(
        _message("someone@elsewhere.example"),
        [_form(person_postcode="", person_address="somewhere")],
    )
    assert decision.outcome is Outcome.NEEDS_REVIEW
    assert decision.area is None
    assert decision.to == [REVIEW]


def test_an_email_without_a_form_gets_exactly_one_review_decision(engine: RoutingEngine) -> None:
    """No reading that is a form: one `needs_review` decision for the inbox's area."""
    decisions = engine.decide(_message(), [])
    assert [(d.outcome, d.area) for d in decisions] == [(Outcome.NEEDS_REVIEW, "lewisham")]
    assert decisions[0].reason == "no referral form attached"


def test_the_local_authority_decides_when_there_is_no_postcode(engine: RoutingEngine) -> None:
    """ "London Borough of Lewisham" on a form without a postcode routes to Lewisham."""
    [decision] = engine.decide(
        _message("someone@elsewhere.example"),
        [_form(person_postcode="", person_address="1 Road", local_authority="LEWISHAM COUNCIL")],
    )
    assert (decision.outcome, decision.area, decision.signal) == (
        Outcome.FORWARD,
        "lewisham",
        "local_authority",
    )
