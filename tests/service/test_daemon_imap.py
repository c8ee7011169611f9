"""End-to-end over IMAP: a real Dovecot inbox, the real journal and pipeline, a capture relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from router.service.daemon import Daemon
from tests.conftest import make_settings
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.dovecot import Dovecot

pytestmark = pytest.mark.dovecot

MET = "preventreferrals@met.pnn.police.uk"


def _referral(number: int) -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id=f"<imap-{number}@school.example>",
    )


async def _start(
    tmp_path: Path, dovecot: Dovecot, relay_url: str, tls_ca_file: Path, journal: str
) -> Daemon:
    settings = make_settings(
        tmp_path,
        journal=journal,
        inbox=f"imaps://{dovecot.user}@127.0.0.1:{dovecot.imaps_port}/INBOX",
        inbox_password=dovecot.password,
        inbox_ca_file=dovecot.ca_file,
        relay=relay_url,
        relay_ca_file=tls_ca_file,
        idle_seconds=30,
        imap_start="all",  # mail waiting before the first start is processed here
    )
    daemon = Daemon(settings, _rules())
    await daemon.start()
    return daemon


def _rules():  # type: ignore[no-untyped-def]
    from router.core.rules.loader import load_rules

    return load_rules(Path(__file__).resolve().parents[2] / "rules")


async def _until(predicate, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition on the journal or the server, bounded (the inbox pushes within ~1 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_imap_referrals_are_forwarded_and_settled(
    tmp_path, dovecot, smtp_capture, tls_ca, journal
):  # type: ignore[no-untyped-def]
    """Mail waiting in the IMAP inbox and mail arriving during IDLE are both forwarded, and
    each inbox copy moves to Processed only after its outcome is recorded."""
    dovecot.append(_referral(1))  # arrived while the router was stopped
    relay = smtp_capture(tls="starttls")
    daemon = await _start(tmp_path, dovecot, relay.url, tls_ca.ca_file, journal)
    worker = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.inbox is not None and daemon.inbox.state == "idle")
        dovecot.append(_referral(2))  # pushed during IDLE
        captured = await relay.wait_for_async(4, timeout=30)
        forwards = [c for c in captured if MET in c.rcpt_tos]
        assert {str(c.message["References"]).split()[-1] for c in forwards} == {
            "<imap-1@school.example>",
            "<imap-2@school.example>",
        }
        await _until(lambda: len(dovecot.uids("Processed")) == 2)
        assert dovecot.uids("INBOX") == []

        def finished() -> list[tuple[str, int]]:
            rows = daemon.journal.query("SELECT state, settled FROM messages")
            return [(r["state"], r["settled"]) for r in rows]

        # The relay has the last acknowledgment a moment before the journal records it.
        await _until(lambda: finished() == [("done", 1), ("done", 1)])
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(worker, 10)
        await daemon.close()


async def test_restart_does_not_process_twice(tmp_path, dovecot, smtp_capture, tls_ca, journal):  # type: ignore[no-untyped-def]
    """A second daemon on the same journal does not forward again what the first one did,
    even when the first stopped before it could move the inbox copy."""
    relay = smtp_capture(tls="starttls")
    dovecot.append(_referral(3))
    first = await _start(tmp_path, dovecot, relay.url, tls_ca.ca_file, journal)
    # Store, decide and deliver, but stop before the inbox copy is moved.
    await _until(lambda: bool(first.journal.query("SELECT 1 FROM messages")))
    first.stop_event.set()
    await first.close()
    reopened = Daemon(first.settings, _rules())
    await reopened.run_once()  # decides and sends what the first one stored
    await relay.wait_for_async(2, timeout=20)
    await reopened.close()  # its relay keeps connections open, and its worker runs
    second = await _start(tmp_path, dovecot, relay.url, tls_ca.ca_file, journal)
    worker = asyncio.create_task(second.run())
    try:
        await _until(lambda: len(dovecot.uids("Processed")) == 1)
        forwards = [c for c in relay.messages if MET in c.rcpt_tos]
        assert len(forwards) == 1
    finally:
        second.stop_event.set()
        await asyncio.wait_for(worker, 10)
        await second.close()
