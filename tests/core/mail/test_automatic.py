"""Tests of automatic-mail classification (SPEC section 3)."""

from __future__ import annotations

import email
import email.policy

import pytest

from router.core.mail.automatic import classify
from router.core.mail.parse import parse_message
from tests.mailfactory import build_email, dsn

ROUTER = "referrals@router.example"


def _verdict(raw: bytes):  # type: ignore[no-untyped-def]
    """The automatic verdict parse_message stores for `raw`."""
    return parse_message(raw, router_from=ROUTER).automatic


@pytest.mark.parametrize(
    ("kw", "kind", "reason_part"),
    [
        ({"headers": {"Auto-Submitted": "auto-replied"}}, "auto_reply", "Auto-Submitted"),
        ({"headers": {"Auto-Submitted": "Auto-Replied; owner-email=x@y"}}, "auto_reply", ""),
        ({"headers": {"X-Autoreply": "yes"}}, "auto_reply", "X-Autoreply"),
        ({"headers": {"X-Autorespond": "yes"}}, "auto_reply", "X-Autorespond"),
        ({"subject": "Out of Office: Prevent referral"}, "auto_reply", "out-of-office"),
        ({"subject": "Automatic reply: Prevent referral"}, "auto_reply", "out-of-office"),
        ({"subject": "Auto: away"}, "auto_reply", "out-of-office"),
        ({"subject": "Autoreply: away"}, "auto_reply", "out-of-office"),
        ({"headers": {"Precedence": "bulk"}}, "bulk", "Precedence: bulk"),
        ({"headers": {"Precedence": "junk"}}, "bulk", "Precedence: junk"),
        ({"headers": {"Precedence": "List"}}, "bulk", "Precedence: list"),
        ({"headers": {"List-Id": "<staff.school.example>"}}, "bulk", "List-Id"),
        ({"sender": "<>"}, "bounce", "null sender"),
        ({"headers": {"Return-Path": "<>"}}, "bounce", "null sender"),
        ({"sender": "MAILER-DAEMON@mx.example"}, "bounce", "mailer-daemon"),
        ({"headers": {"From": "MAILER-DAEMON"}}, "bounce", "mailer-daemon"),
        ({"sender": "Postmaster <postmaster@school.example>"}, "bounce", "postmaster"),
        ({"sender": ROUTER, "headers": {"Auto-Submitted": "auto-generated"}}, "own_mail", "own"),
        ({"sender": ROUTER.upper(), "headers": {"Auto-Submitted": "auto-replied"}}, "own_mail", ""),
    ],
)
def test_ignored_kinds(kw: dict[str, object], kind: str, reason_part: str) -> None:
    """Auto-replies, bulk and list mail, bounces and the router's own mail are ignored."""
    verdict = _verdict(build_email(**kw))  # type: ignore[arg-type]
    assert (verdict.ignore, verdict.acknowledge, verdict.kind) == (True, False, kind)
    assert reason_part in verdict.reason


@pytest.mark.parametrize(
    ("kw", "kind"),
    [
        ({"headers": {"Auto-Submitted": "auto-generated"}}, "auto_generated"),
        ({"headers": {"Auto-Submitted": "auto-notified"}}, "auto_generated"),
        ({"headers": {"X-Auto-Response-Suppress": "All"}}, "auto_generated"),
        ({"sender": "noreply@mis.example"}, "noreply"),
        ({"sender": "No-Reply <no-reply@mis.example>"}, "noreply"),
        ({"sender": "donotreply@mis.example"}, "noreply"),
        ({"sender": "do_not_reply@mis.example"}, "noreply"),
        ({"sender": "gmail-noreply@google.com"}, "noreply"),
    ],
)
def test_routed_but_not_acknowledged(kw: dict[str, object], kind: str) -> None:
    """Automatic mail that is not a reply is routed but never acknowledged."""
    verdict = _verdict(build_email(**kw))  # type: ignore[arg-type]
    assert (verdict.ignore, verdict.acknowledge, verdict.kind) == (False, False, kind)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"headers": {"Auto-Submitted": "no"}},
        {"headers": {"X-Auto-Response-Suppress": "None"}},
        {"subject": "Out of office hours referral"},
        {"subject": "Automatic reply needed? Prevent referral"},
        {"sender": ROUTER},  # our address but not automatic: a person, not our own mail
        {"headers": {"List-Unsubscribe": "<mailto:u@x.example>"}},
    ],
)
def test_ordinary_mail_is_acknowledged(kw: dict[str, object]) -> None:
    """A person's referral is routed and acknowledged."""
    verdict = _verdict(build_email(**kw))  # type: ignore[arg-type]
    assert (verdict.ignore, verdict.acknowledge, verdict.kind) == (False, True, "none")


def test_dsn_reports_the_original_message_id() -> None:
    """A multipart/report names the Message-ID of the bounced forward."""
    verdict = _verdict(dsn("<forward-1@router.example>"))
    assert verdict.kind == "bounce"
    assert verdict.reported_message_ids == ["<forward-1@router.example>"]


def test_plain_bounce_falls_back_to_references() -> None:
    """A mailer-daemon bounce with no report parts reports its In-Reply-To/References."""
    raw = build_email(
        sender="MAILER-DAEMON@mx.example",
        body="Delivery failed.",
        headers={
            "In-Reply-To": "<fwd-2@router.example>",
            "References": "<a@b> <fwd-2@router.example>",
        },
    )
    assert _verdict(raw).reported_message_ids == ["<fwd-2@router.example>", "<a@b>"]


def test_plain_bounce_quoting_original_headers() -> None:
    """A text bounce that quotes the original headers reports the quoted Message-ID."""
    body = "This is the mail system.\n\n--- original ---\nMessage-ID: <fwd-3@router.example>\n"
    raw = build_email(sender="postmaster@mx.example", body=body)
    assert _verdict(raw).reported_message_ids == ["<fwd-3@router.example>"]


def test_classify_accepts_modern_policy_message() -> None:
    """classify works on a message parsed with email.policy.default, even with bad headers."""
    raw = build_email(headers={"To": "<<<@@@>>>", "Auto-Submitted": "auto-replied"})
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    verdict = classify(msg, from_address="teacher@school.example", router_from=ROUTER)
    assert verdict.kind == "auto_reply"


def test_router_from_with_display_name() -> None:
    """ROUTER_FROM_ADDRESS given with a display name still recognises the router's own mail."""
    raw = build_email(sender=ROUTER, headers={"Auto-Submitted": "auto-generated"})
    verdict = parse_message(raw, router_from=f"Referral Router <{ROUTER.upper()}>").automatic
    assert verdict.kind == "own_mail"


def test_message_without_headers_needs_a_person() -> None:
    """Bytes with no readable header are not ignored (a person must look) and not acknowledged."""
    verdict = _verdict(b"\xd0\xcf\x11\xe0 not an email at all")
    assert (verdict.ignore, verdict.acknowledge) == (False, False)


def test_message_without_from_is_routed_not_ignored() -> None:
    """No From header at all is not a bounce: the message is routed, never acknowledged."""
    verdict = _verdict(build_email(sender=None))
    assert (verdict.ignore, verdict.acknowledge) == (False, False)
