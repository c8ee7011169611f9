"""Acknowledgment abuse: the per-sender daily cap, and no replies to DMARC-failed senders."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from router.core.analysis import analyse
from router.core.mail.auth import dmarc_failed, parse_authentication_results
from router.core.mail.parse import parse_message
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening.conftest import ROUTER_FROM
from tests.mailfactory import build_email

FORM = fillable_pdf(labelled(complete_referral()))
COUNCIL_MX = "mx.council.example"


def _referral(*results: str, sender: str = "teacher@school.example") -> bytes:
    """A complete referral carrying Authentication-Results headers, topmost first."""
    raw = build_email(sender=sender, attachments=[("referral.pdf", FORM, "application/pdf")])
    head = b"".join(f"Authentication-Results: {value}\r\n".encode() for value in results)
    return head + raw


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mx.council.example; dmarc=fail (p=reject dis=none) header.from=school.example", True),
        ("mx.council.example;\r\n\tspf=pass smtp.mailfrom=x;\r\n\tdmarc=FAIL header.from=x", True),
        ("mx.council.example 1; dkim=pass; dmarc/1=fail", True),
        ('"mx.council.example"; dmarc = fail reason="a;b"', True),
        ("mx.council.example; dmarc=pass header.from=school.example", False),
        ("mx.council.example; dmarc=none", False),
        ("mx.council.example; none", False),
        ("mx.council.example; spf=fail (dmarc=fail in a comment) smtp.mailfrom=x", False),
        ('mx.council.example; dkim=pass header.b="dmarc=fail"', False),
        ("mx.council.example; arc=fail; dmarcx=fail", False),
        ("", False),
        ("(((((", False),
        (";;;;dmarc=fail", False),
    ],
)
def test_dmarc_results_are_read_tolerantly(value: str, expected: bool) -> None:
    """RFC 8601 values: comments, quotes, versions, folding and case are handled."""
    assert dmarc_failed([value]) is expected


def test_authserv_id_is_read() -> None:
    """The authserv-id comes first, without quotes or version; results are lower case."""
    assert parse_authentication_results('"MX.Council.Example" 1; DMARC=Fail') == (
        "mx.council.example",
        [("dmarc", "fail")],
    )


def test_without_trusted_ids_only_the_topmost_header_counts() -> None:
    """With no trusted ids, a fail further down (written by an earlier hop) is not believed."""
    assert not dmarc_failed(["mx.a; dmarc=pass", "mx.b; dmarc=fail"])
    assert dmarc_failed(["mx.a; dmarc=fail", "mx.b; dmarc=pass"])


def test_with_trusted_ids_only_their_headers_count() -> None:
    """With trusted ids, only headers from those servers count, wherever they are."""
    trusted = ["MX.council.example"]
    assert dmarc_failed(["other.example; dmarc=pass", f"{COUNCIL_MX}; dmarc=fail"], trusted)
    assert not dmarc_failed(["evil.example; dmarc=fail", f"{COUNCIL_MX}; dmarc=pass"], trusted)


def test_parse_message_sets_dmarc_fail() -> None:
    """parse_message reads the headers with the trusted ids it is given."""
    raw = _referral(f"{COUNCIL_MX}; dmarc=fail header.from=school.example")
    assert parse_message(raw).dmarc_fail
    assert parse_message(raw, trusted_authserv_ids=[COUNCIL_MX]).dmarc_fail
    assert not parse_message(raw, trusted_authserv_ids=["mx.other.example"]).dmarc_fail
    assert not parse_message(_referral(f"{COUNCIL_MX}; dmarc=pass")).dmarc_fail


def test_dmarc_failure_routes_but_does_not_acknowledge(engine: RoutingEngine) -> None:
    """A DMARC-failed sender's referral is still forwarded, but nobody is acknowledged."""
    raw = _referral(f"{COUNCIL_MX}; dmarc=fail header.from=school.example")
    [decision] = analyse(
        raw, engine, router_from=ROUTER_FROM, trusted_authserv_ids=(COUNCIL_MX,)
    ).decisions
    assert decision.outcome == "forward"
    assert decision.ack_to is None
    assert "failed DMARC" in decision.reason
    [passed] = analyse(
        _referral(f"{COUNCIL_MX}; dmarc=pass"), engine, router_from=ROUTER_FROM
    ).decisions
    assert passed.ack_to == "teacher@school.example"
    assert "DMARC" not in passed.reason


def _acks(outbox: Path) -> list[EmailMessage]:
    """The acknowledgments the Maildir relay wrote."""
    parsed = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((outbox / "new").iterdir())
    ]
    return [m for m in parsed if m["Auto-Submitted"] == "auto-replied"]  # type: ignore[misc]


def _with_limit(rules: Rules, limit: int) -> Rules:
    texts = rules.acknowledgments.model_copy(update={"daily_limit_per_sender": limit})
    return rules.model_copy(update={"acknowledgments": texts})


@pytest.mark.parametrize(("limit", "sent", "acknowledged"), [(3, 6, 3), (0, 4, 4)])
async def test_daily_cap_per_sender_holds(
    daemon_factory, bundled_rules: Rules, tmp_path: Path, limit: int, sent: int, acknowledged: int
) -> None:  # type: ignore[no-untyped-def]
    """cap+3 referrals from one sender get exactly cap acknowledgments (0: no cap), and
    every referral is still forwarded."""
    daemon = await daemon_factory()
    daemon.set_rules(_with_limit(bundled_rules, limit))
    for number in range(sent):
        sender = "Teacher@School.Example" if number % 2 else "teacher@school.example"
        await submit(daemon, _referral(sender=sender))
    await daemon.run_once()
    acks = _acks(tmp_path / "outbox")
    assert len(acks) == acknowledged
    assert {str(m["To"]) for m in acks} == {"teacher@school.example"}
    outcomes = [r["outcome"] for r in daemon.journal.query("SELECT outcome FROM decisions")]
    assert outcomes == ["forward"] * sent


async def test_dmarc_failure_is_not_acknowledged_by_the_daemon(
    daemon_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Through the daemon, with the council's server trusted: forwarded, no reply at all."""
    daemon = await daemon_factory(trusted_authserv_ids=f"other.example, {COUNCIL_MX.upper()}")
    forged = _referral(
        "evil.example; dmarc=pass", f"{COUNCIL_MX}; dmarc=fail header.from=school.example"
    )
    await submit(daemon, forged)
    await daemon.run_once()
    assert _acks(tmp_path / "outbox") == []
    [row] = daemon.journal.query("SELECT outcome, record FROM decisions")
    assert row["outcome"] == "forward"
    assert "failed DMARC" in row["record"]
