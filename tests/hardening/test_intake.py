"""Intake against a real `serve`: a resend is recorded once, quoting tricks share one
acknowledgment cap, a relay's refusal never logs the referrer, no stored file without a row."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.hardening.serve import (
    ServeProcess,
    referral,
    send_until_stored,
    wait_for_forwards,
)
from tests.servers.smtp import CaptureServer
from tests.service.test_lifecycle import MET

SENDER = "teacher@school.example"


def _journal(router: ServeProcess, sql: str) -> list[tuple[object, ...]]:
    """Read the daemon's journal from outside, as `status` would."""
    with sqlite3.connect(router.cwd / "state" / "journal.sqlite3") as db:
        return db.execute(sql).fetchall()


def _wait_until_done(router: ServeProcess, count: int, timeout: float = 60) -> None:
    """Wait until `count` messages have nothing left to send (state done)."""
    deadline = time.monotonic() + timeout
    sql = "SELECT COUNT(*) FROM messages WHERE state = 'done'"
    while _journal(router, sql)[0][0] < count:
        assert time.monotonic() < deadline, _journal(router, "SELECT id, state FROM messages")
        time.sleep(0.1)  # polling another process's journal


def test_resent_message_is_recorded_once(serve: tuple[ServeProcess, CaptureServer]) -> None:
    """A sender that sends the same message again (it never saw our 250) gets the same
    reference back; the journal holds it once and the police get one forward."""
    router, capture = serve
    router.start()
    deadline, raw = time.monotonic() + 60, referral(1)
    first = send_until_stored(router.port, raw, sender=SENDER, deadline=deadline)
    again = send_until_stored(router.port, raw, sender=SENDER, deadline=deadline)
    assert first == again and first.startswith("2.0.0 Stored as ")
    _wait_until_done(router, 1)
    assert _journal(router, "SELECT COUNT(*) FROM messages") == [(1,)]
    assert wait_for_forwards(capture, range(1, 2), timeout=10) == {"<referral-1@school.example>": 1}


def test_quoted_variants_share_one_acknowledgment_cap(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """With a cap of 2 a day, four referrals from spellings of one address (quoted, quoted
    with a space, plain, upper-case domain) get two acknowledgments in all."""
    router, capture = serve
    rules = router.cwd / "rules" / "acknowledgments.yaml"
    rules.write_text(
        rules.read_text().replace("daily_limit_per_sender: 20", "daily_limit_per_sender: 2")
    )
    router.start()
    spellings = [
        '"victim"@school.example',
        '" victim"@school.example',
        "victim@school.example",
        '"victim"@SCHOOL.example',
    ]
    deadline = time.monotonic() + 60
    for number, spelling in enumerate(spellings):
        send_until_stored(
            router.port, referral(number, sender=spelling), sender=SENDER, deadline=deadline
        )
    _wait_until_done(router, len(spellings))
    assert len(wait_for_forwards(capture, range(4), timeout=10)) == 4
    acks = [m for m in capture.messages if MET not in m.rcpt_tos and "victim" in str(m.rcpt_tos)]
    assert len(acks) == 2


def test_relay_refusing_an_acknowledgment_logs_no_address(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """The relay defers, then refuses, the acknowledgment quoting the referrer's address in
    its reply: at debug level the log never shows that address."""
    router, capture = serve
    canary = "canary.referrer.7@school.example"
    capture.fail_with(451, f"4.2.1 <{canary}>: mailbox busy", at="RCPT", times=1,
                      recipients={canary})  # fmt: skip
    capture.fail_with(550, f"5.1.1 <{canary}>: no such user", at="RCPT", recipients={canary})
    router.start()
    send_until_stored(router.port, referral(1, sender=canary), sender=SENDER,
                      deadline=time.monotonic() + 60)  # fmt: skip
    _wait_until_done(router, 1)
    assert _journal(router, "SELECT state FROM outbox WHERE kind = 'ack'") == [("failed",)]
    log = router.wait_logged("delivery_deferred", "delivery_failed")
    assert "canary.referrer" not in log.lower()


def test_orphaned_copies_are_removed_at_start(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """A stored copy with no journal row (a crash between writing it and recording it) is
    deleted when the daemon starts; copies with rows are kept."""
    router, _capture = serve
    router.start()
    send_until_stored(router.port, referral(1), sender=SENDER, deadline=time.monotonic() + 60)
    _wait_until_done(router, 1)
    router.stop()
    messages = router.cwd / "state" / "messages"
    orphan = messages / "20260101-0DDF00D5.eml"
    orphan.write_bytes(referral(2))
    spool_orphan = router.cwd / "state" / "spool" / "20260101-0DDF00D5.0.eml"
    spool_orphan.write_bytes(b"Subject: x\r\n\r\nx\r\n")
    router.start()
    assert not orphan.exists() and not spool_orphan.exists()
    assert _stored_without_row(router, messages) == []
    assert len(list(messages.glob("*.eml"))) == 1


def _stored_without_row(router: ServeProcess, messages: Path) -> list[str]:
    ids = {row[0] for row in _journal(router, "SELECT id FROM messages")}
    return [path.name for path in messages.glob("*.eml") if path.stem not in ids]
