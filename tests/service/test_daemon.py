"""End-to-end: the embedded SMTP inbox, the journal, the pipeline and a real relay."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

import aiosmtplib
import pytest

from router.journal.opener import open_journal
from router.models import PERSONAL_FIELDS
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.journal.backends import break_message_storage
from tests.mailfactory import build_email, dsn

MET = "preventreferrals@met.pnn.police.uk"
LEWISHAM_CC = {"mashagency@lewisham.gov.uk", "prevent@lewisham.gov.uk"}


def _referral(**overrides: str | None) -> tuple[bytes, bytes]:
    pdf = fillable_pdf(labelled(complete_referral(**overrides)))
    raw = build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")], message_id="<orig-1@school.example>"
    )
    return raw, pdf


def _addresses(message: EmailMessage, header: str) -> set[str]:
    return {a.addr_spec.lower() for a in message[header].addresses} if message[header] else set()


def _by_recipient(captured: list, address: str) -> EmailMessage:  # type: ignore[type-arg]
    [match] = [c.message for c in captured if address in c.rcpt_tos]
    return match


async def test_complete_referral_is_forwarded_and_acknowledged(
    daemon_factory, smtp_capture, tls_ca
):
    """A complete Lewisham form goes to the Met with the MASH and Prevent CCs, and the
    referrer gets a reference number and the 999 advice, with no personal details."""
    relay = smtp_capture(tls="starttls")
    daemon = await daemon_factory(relay=relay.url, relay_ca_file=tls_ca.ca_file)
    raw, pdf = _referral()
    reply = await submit(daemon, raw)
    assert "Stored as" in reply
    await daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)

    forward = _by_recipient(captured, MET)
    assert _addresses(forward, "To") == {MET}
    assert _addresses(forward, "Cc") == LEWISHAM_CC
    assert forward["Auto-Submitted"] == "auto-generated"
    assert "<orig-1@school.example>" in forward["References"]
    assert forward["Message-ID"] and forward["Message-ID"] != "<orig-1@school.example>"
    attachments = {p.get_filename(): p for p in forward.iter_attachments()}
    assert attachments["referral.pdf"].get_payload(decode=True) == pdf
    assert any(p.get_content_type() == "message/rfc822" for p in forward.iter_attachments())
    forward_envelope = next(c for c in captured if MET in c.rcpt_tos)
    assert set(forward_envelope.rcpt_tos) == {MET, *LEWISHAM_CC}

    ack = _by_recipient(captured, "teacher@school.example")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<orig-1@school.example>"
    body = ack.get_body(preferencelist=("plain",)).get_content()
    reference = forward["X-Referral-Reference"]
    assert reference and reference in body and "999" in body
    for name, value in complete_referral().items():
        if name in PERSONAL_FIELDS:
            assert value not in body, f"acknowledgment carries {name}"


async def test_incomplete_referral_goes_to_the_team_not_the_police(daemon_factory, smtp_capture):
    """A form without a date of birth goes to the council's Prevent team marked INCOMPLETE;
    the referrer is told which field is missing."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral(person_dob=None)
    await submit(daemon, raw)
    await daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    assert all(MET not in c.rcpt_tos for c in captured)
    team = _by_recipient(captured, "prevent@lewisham.gov.uk")
    assert "INCOMPLETE" in team["Subject"]
    ack = _by_recipient(captured, "teacher@school.example")
    ack_text = ack.get_body(preferencelist=("plain",)).get_content()
    assert "date of birth of the person referred" in ack_text  # the form's words (SPEC 3)


async def test_transient_relay_failure_is_retried(daemon_factory, smtp_capture):
    """A relay answering 451 keeps the mail; it is sent on a later attempt."""
    relay = smtp_capture()
    relay.fail_with(451, "try again later", at="DATA", times=2)
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral()
    await submit(daemon, raw)
    for _ in range(50):
        await daemon.run_once()
        if len(relay.messages) >= 2:
            break
        await _until_due(daemon)
    captured = await relay.wait_for_async(2, timeout=10)
    assert any(MET in c.rcpt_tos for c in captured)
    rows = daemon.journal.query("SELECT state, attempts FROM outbox WHERE kind = 'forward'")
    assert rows[0]["state"] == "sent" and rows[0]["attempts"] >= 2


async def test_dropped_connection_mid_data_is_retried(daemon_factory, smtp_capture):
    """A connection cut during DATA is a transient failure: the forward arrives later."""
    relay = smtp_capture()
    relay.drop_connection_mid_data(times=1)
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral()
    await submit(daemon, raw)
    for _ in range(50):
        await daemon.run_once()
        if any(MET in c.rcpt_tos for c in relay.messages):
            break
        await _until_due(daemon)
    assert any(MET in c.rcpt_tos for c in relay.messages)


async def test_permanent_failure_alerts_review_and_quarantines(daemon_factory, smtp_capture):
    """A 550 for the forward quarantines the message and alerts the review address."""
    relay = smtp_capture()
    relay.fail_with(550, "no such user", at="RCPT", times=1, recipients={MET})
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral()
    await submit(daemon, raw)
    await daemon.run_once()
    captured = await relay.wait_for_async(1, timeout=10)
    alert = _by_recipient(captured, "review@router.example")
    assert "NOT delivered" in alert["Subject"]
    [row] = daemon.journal.query("SELECT state, last_error FROM messages")
    assert row["state"] == "quarantined" and "550" in row["last_error"]
    # The referrer is not told "forwarded" about a referral that did not go.
    assert all("teacher@school.example" not in c.rcpt_tos for c in relay.messages)


async def test_bounce_of_a_forward_alerts_review(daemon_factory, smtp_capture):
    """A delivery report about a forward is ignored (no ack) but a person is alerted."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral()
    await submit(daemon, raw)
    await daemon.run_once()
    forward = _by_recipient(await relay.wait_for_async(2, timeout=10), MET)
    await submit(daemon, dsn(forward["Message-ID"]), sender="")
    await daemon.run_once()
    captured = await relay.wait_for_async(3, timeout=10)
    alert = _by_recipient(captured, "review@router.example")
    assert "did NOT arrive" in alert["Subject"]
    outcomes = [r["outcome"] for r in daemon.journal.query("SELECT outcome FROM decisions")]
    assert outcomes.count("ignored") == 1
    assert len(captured) == 3  # forward, ack, alert: no acknowledgment to the bounce


async def test_maildir_relay_writes_one_file_per_mail(daemon_factory, tmp_path):
    """The default relay writes each outgoing mail into outbox/new with its To and Cc."""
    daemon = await daemon_factory()
    raw, _ = _referral()
    await submit(daemon, raw)
    await daemon.run_once()
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2
    assert not list((tmp_path / "outbox" / "tmp").iterdir())
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    forward = next(m for m in parsed if MET in str(m["To"]))
    assert _addresses(forward, "Cc") == LEWISHAM_CC  # type: ignore[arg-type]


async def test_listener_answers_451_when_it_cannot_store(daemon_factory):
    """If the journal cannot store the message, the sender is told to retry (451), not 250."""
    daemon = await daemon_factory()
    break_message_storage(daemon.journal)
    raw, _ = _referral()
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await submit(daemon, raw)
    assert caught.value.code == 451


async def test_message_is_durable_before_250(daemon_factory, tmp_path):
    """Once the listener says 250, the raw message is stored and in the journal (seen by a
    journal opened afresh)."""
    daemon = await daemon_factory()
    raw, _ = _referral()
    await submit(daemon, raw)
    journal = open_journal(daemon.settings)
    try:
        [row] = journal.query("SELECT id, state FROM messages")
        assert row["state"] == "received"
        assert journal.raw_message(row["id"]) == raw
    finally:
        journal.close()


async def _until_due(daemon) -> None:  # type: ignore[no-untyped-def]
    """Wait until the journal's next retry is due (bounded by the test settings' backoff)."""
    import asyncio
    import time

    due = daemon.journal.next_due()
    if due is not None:
        await asyncio.sleep(max(0.0, min(1.0, due - time.time())))


async def test_a_copy_for_another_inbox_address_is_recorded_for_it(  # type: ignore[no-untyped-def]
    daemon_factory, smtp_capture
):
    """The same bytes delivered again for another inbox address are stored once and recorded
    for that address too: a form naming no postcode or council, sent to an address of no area
    and again to Lewisham's inbox, is decided for Lewisham."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    pdf = fillable_pdf(labelled(complete_referral(person_postcode=None, local_authority=None)))
    raw = build_email(
        to=("referrals@county.example",),
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id="<copy-1@school.example>",
    )
    first = await submit(daemon, raw, recipients=("referrals@county.example",))
    again = await submit(daemon, raw, recipients=("PREVENT@lewisham.gov.uk",))
    assert first == again
    [row] = daemon.journal.query("SELECT envelope_rcpts FROM messages")
    assert json.loads(row["envelope_rcpts"]) == [
        "referrals@county.example",
        "prevent@lewisham.gov.uk",
    ]
    await daemon.run_once()
    assert [r["area"] for r in daemon.journal.query("SELECT area FROM decisions")] == ["lewisham"]


async def test_a_message_sent_again_is_stored_once(daemon_factory, smtp_capture):  # type: ignore[no-untyped-def]
    """A sending server that lost the 250 and sends the same message again is told it is
    stored, under the same id, and the referral is forwarded once; a changed message with the
    same Message-ID is a new one."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    raw, _ = _referral()
    first, again = await submit(daemon, raw), await submit(daemon, raw)
    assert first == again and first.startswith("2.0.0 Stored as ")
    changed = raw.replace(b"\r\n\r\n", b"\r\nX-Resent: yes\r\n\r\n", 1)
    assert await submit(daemon, changed) != first
    assert len(daemon.journal.query("SELECT id FROM messages")) == 2
    await daemon.run_once()
    assert sum(MET in c.rcpt_tos for c in relay.messages) == 2
