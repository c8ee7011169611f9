"""Composing from templates: exact bytes in and out; odd headers never block a forward."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from email.message import EmailMessage

import pytest

from router.core.analysis import analyse
from router.core.compose import compose_ack, compose_forward, enclose
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import LOGO_PNG, build_email

ROUTER_FROM = "referrals@router.example"
MET = "preventreferrals@met.pnn.police.uk"
PDF = fillable_pdf(labelled(complete_referral()))
REFERRAL = build_email(
    attachments=[("referral.pdf", PDF, "application/pdf")], message_id="<orig-7@school.example>"
)


@pytest.fixture(scope="module")
def engine(bundled_rules: Rules) -> RoutingEngine:
    """A routing engine on the bundled rules."""
    return RoutingEngine(bundled_rules, review_address="review@router.example")


def _forward(engine: RoutingEngine, raw: bytes) -> tuple[bytes, EmailMessage]:
    analysis = analyse(raw, engine, router_from=ROUTER_FROM)
    [decision] = analysis.decisions
    outgoing = compose_forward(
        decision, "PR-1-1", analysis.message, raw, analysis.readings, sender=ROUTER_FROM
    )
    parsed = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage) and not parsed.defects
    return outgoing.data, parsed


def test_original_travels_byte_for_byte_as_message_rfc822(engine: RoutingEngine) -> None:
    """The forward holds the original email's exact bytes in a message/rfc822 part, and the
    form decoded from its part is the stored form byte for byte."""
    data, forward = _forward(engine, REFERRAL)
    parts = {p.get_filename(): p for p in forward.iter_attachments()}
    assert parts["referral.pdf"].get_payload(decode=True) == PDF
    assert parts["original.eml"].get_content_type() == "message/rfc822"
    assert b"\r\n\r\n" + REFERRAL + b"\r\n--" in data  # verbatim, not re-serialised
    assert forward["References"] == "<orig-7@school.example>"


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw.replace(b"\r\n", b"\n"),  # bare LF line ends
        lambda raw: raw.replace(b"Please find attached.", b"x" * 5000),  # a 5,000-octet line
        lambda raw: raw.replace(b"Please find attached.", b"nul \x00 here"),
    ],
)
def test_original_that_is_not_valid_rfc822_is_attached_as_a_file(
    engine: RoutingEngine, damage: object
) -> None:
    """An original that a message/rfc822 part may not carry as is goes as original.eml, whose
    decoded bytes are the original's exact bytes."""
    raw = damage(REFERRAL)  # type: ignore[operator]
    _, forward = _forward(engine, raw)
    parts = {p.get_filename(): p for p in forward.iter_attachments()}
    assert parts["original.eml"].get_content_type() == "application/octet-stream"
    assert parts["original.eml"].get_payload(decode=True) == raw


def test_non_ascii_and_long_file_names_round_trip(engine: RoutingEngine) -> None:
    """A non-ASCII or very long attachment name reaches the recipient as it was written."""
    names = ["référé €.pdf", "a" * 150 + ".png"]
    raw = build_email(
        attachments=[(names[0], PDF, "application/pdf"), (names[1], LOGO_PNG, "image/png")],
        message_id="<o@school.example>",
    )
    analysis = analyse(raw, engine, router_from=ROUTER_FROM)
    decision = analysis.decisions[0]
    outgoing = compose_forward(
        decision, "PR-1-1", analysis.message, raw, analysis.readings, sender=ROUTER_FROM
    )
    parsed = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    found = {p.get_filename() for p in parsed.iter_attachments()}
    assert set(names) <= found
    assert all(len(line) <= 998 for line in outgoing.data.split(b"\r\n"))


def test_enclosures_written_once_compose_the_same_forward(engine: RoutingEngine) -> None:
    """A forward built from parts written beforehand (in the worker) carries the same
    attachments as one built from the raw bytes."""
    analysis = analyse(REFERRAL, engine, router_from=ROUTER_FROM)
    [decision] = analysis.decisions
    parts = enclose(analysis.message, REFERRAL)
    outgoing = compose_forward(
        decision, "PR-1-1", analysis.message, parts, analysis.readings, sender=ROUTER_FROM
    )
    assert parts.attachments[0] in outgoing.data and parts.original in outgoing.data


@pytest.mark.parametrize("separator", ["\u2028", "\u0085"])
def test_line_separator_in_the_from_address_does_not_block_the_forward(
    engine: RoutingEngine, bundled_rules: Rules, separator: str
) -> None:
    """A From address with U+2028 or U+0085 in a quoted local part still composes a forward
    (the address shown escaped in its body); only the acknowledgment is refused."""
    sender = f'"tea{separator}cher"@school.example'
    raw = REFERRAL.replace(b"From: teacher@school.example", f"From: {sender}".encode())
    _, forward = _forward(engine, raw)
    body = forward.get_body(preferencelist=("plain",))
    assert body is not None and f"tea\\u{ord(separator):04x}cher" in body.get_content()
    analysis = analyse(raw, engine, router_from=ROUTER_FROM)
    with pytest.raises(ValueError, match="header"):
        compose_ack(
            analysis.decisions[0],
            "PR-1-1",
            analysis.message,
            bundled_rules.acknowledgments,
            sender=ROUTER_FROM,
            area_name="Lewisham",
        )


async def test_odd_headers_are_forwarded_not_quarantined(daemon_factory, smtp_capture) -> None:  # type: ignore[no-untyped-def]
    """Complete referrals with a U+2028 in the quoted From local part, or a folded
    Content-Type on the form, are forwarded to the police with the form byte for byte."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    odd_from = REFERRAL.replace(
        b"From: teacher@school.example", 'From: "tea\u2028cher"@school.example'.encode()
    )
    folded = REFERRAL.replace(
        b"Content-Type: application/pdf", b"Content-Type: application/\r\n pdf"
    )
    assert odd_from != REFERRAL and folded != REFERRAL
    for raw in (odd_from, folded):
        await submit(daemon, raw)
    await daemon.run_once()
    states = {r["state"] for r in daemon.journal.query("SELECT state FROM messages")}
    assert states == {"done"}
    captured = await relay.wait_for_async(3, timeout=10)  # two forwards, one acknowledgment
    forwards = [c.message for c in captured if MET in c.rcpt_tos]
    assert len(forwards) == 2
    for forward in forwards:
        [form] = [p for p in forward.iter_attachments() if p.get_filename() == "referral.pdf"]
        assert form.get_content_type() == "application/pdf"
        assert form.get_payload(decode=True) == PDF
    acks = [c for c in captured if MET not in c.rcpt_tos]
    assert [c.rcpt_tos for c in acks] == [("teacher@school.example",)]


def _many_empty_parts(count: int) -> bytes:
    head = REFERRAL.split(b"\r\n\r\n", 1)[0].split(b"\r\nContent-Type:", 1)[0]
    body = b"--b\r\n\r\n" * count + b"--b--\r\n"
    return (
        head
        + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + body
    )


async def _loop_stalls(done: asyncio.Event) -> float:
    """The longest time the event loop did not run this task while `done` was unset."""
    worst, last = 0.0, time.monotonic()
    while not done.is_set():
        await asyncio.sleep(0.01)  # a probe of loop latency, not a wait for an event
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


async def test_hostile_mime_is_composed_without_stalling_the_loop(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A message of 100,000 empty MIME parts is decided and its review mail composed while
    the daemon's event loop keeps turning (it is never re-parsed in the daemon)."""
    daemon = await daemon_factory(parse_timeout_seconds=60.0)  # a Maildir relay
    await submit(daemon, _many_empty_parts(100_000))
    done = asyncio.Event()
    probe = asyncio.create_task(_loop_stalls(done))
    await daemon.run_once()
    done.set()
    worst = await probe
    [row] = daemon.journal.query("SELECT state FROM messages")
    assert row["state"] == "done"
    assert worst < 1.0, f"the event loop stalled for {worst:.2f} s"
    kinds = [
        r["kind"] for r in daemon.journal.query("SELECT kind FROM outbox WHERE state = 'sent'")
    ]
    assert sorted(kinds) == ["ack", "review"]
