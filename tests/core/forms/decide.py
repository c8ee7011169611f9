"""Decide one emailed form with the bundled rules, as `route` and the daemon would."""

from __future__ import annotations

from router.core.analysis import analyse
from router.core.routing import RoutingEngine
from router.core.rules.loader import load_rules
from router.models import Decision
from tests.conftest import ROOT
from tests.mailfactory import build_email

REVIEW = "review@router.example"
MET = "preventreferrals@met.pnn.police.uk"
LEWISHAM_CC = ["mashagency@lewisham.gov.uk", "prevent@lewisham.gov.uk"]
ENGINE = RoutingEngine(load_rules(ROOT / "rules"), review_address=REVIEW)


def decide(filename: str, data: bytes, mime: str = "application/octet-stream") -> Decision:
    """The one decision for an email to Lewisham's inbox carrying one attachment."""
    raw = build_email(attachments=[(filename, data, mime)])
    decisions = analyse(raw, ENGINE, router_from="referrals@router.example").decisions
    assert len(decisions) == 1
    return decisions[0]
