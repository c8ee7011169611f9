"""The audit trail is written in the transaction of each change: a daemon killed at any
moment leaves no change without its event and no event without its change."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable

import pytest

from router.journal.protocol import Journal
from router.journal.records import JournalUnavailable
from tests.commands.served import Served, count, referral_email, served

__all__ = ["served"]  # the fixture, imported for pytest


def _events(journal: Journal, event: str, column: str) -> Counter[str]:
    rows = journal.query(f"SELECT {column} AS k FROM events WHERE event = ?", (event,))  # noqa: S608
    return Counter(str(row["k"]) for row in rows)


def _assert_consistent(journal: Journal) -> None:
    """Every change has exactly its events, and every event its change."""
    messages = {row["id"]: row for row in journal.query("SELECT id, state FROM messages")}
    assert _events(journal, "received", "message_id") == Counter(list(messages))
    references = [row["reference"] for row in journal.query("SELECT reference FROM decisions")]
    assert _events(journal, "decided", "reference") == Counter(references)
    mails = {row["id"]: row for row in journal.query("SELECT id, state FROM outbox")}
    assert _events(journal, "queued", "mail_id") == Counter(list(mails))
    sent = _events(journal, "sent", "mail_id")
    assert sent == Counter(m for m, row in mails.items() if row["state"] == "sent")
    quarantined = {m for m, row in messages.items() if row["state"] == "quarantined"}
    assert quarantined <= set(_events(journal, "quarantined", "message_id"))
    stats = [row["reference"] for row in journal.query("SELECT reference FROM referral_stats")]
    assert Counter(stats) == Counter(references)


@pytest.mark.slow
@pytest.mark.timeout(300)  # six kills and restarts, each starting a worker again
def test_a_killed_daemon_leaves_no_change_without_its_event(
    served: Callable[[], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL right after intake and in the middle of sending, again and again: after the
    restarts every message, decision and mail has its events, and nothing else has any."""
    router = served()
    total = 12
    for number in range(total):
        sent_before = len(router.capture.messages)
        router.send(referral_email(number))
        if number % 4 == 1:
            router.process.kill()  # straight after the 250: stored, maybe not decided
            router.process.start()
        elif number % 4 == 3:
            router.capture.wait_beyond(sent_before, timeout=30)  # while it sends
            router.process.kill()
            with router.journal(monkeypatch) as journal:
                _assert_consistent(journal)
            router.process.start()
    router.wait_until(
        monkeypatch,
        lambda j: count(j, "SELECT COUNT(*) AS n FROM messages WHERE state = 'done'") == total,
        timeout=120,  # a loaded machine: each restart starts a worker again
    )
    with router.journal(monkeypatch) as journal:
        _assert_consistent(journal)
        details = [json.loads(row["detail"]) for row in journal.query("SELECT detail FROM events")]
    assert all("Jane Testperson" not in json.dumps(detail) for detail in details)


def test_the_trail_refuses_deletes_and_rewrites(
    journal_factory: Callable[..., Journal],
) -> None:
    """The events table is append-only: a DELETE or a change of what happened is refused
    by the database itself (only the purge's scrub of `detail` may update a row)."""
    journal = journal_factory()
    journal.accept_sync(b"From: a@b.example\r\n\r\nhello\r\n")
    refused = (sqlite3.IntegrityError, JournalUnavailable)  # SQLite RAISE, PostgreSQL trigger
    with pytest.raises(refused), journal.transaction() as tx:
        tx.run("DELETE FROM events")
    with pytest.raises(refused), journal.transaction() as tx:
        tx.run("UPDATE events SET event = 'decided'")
    with journal.transaction() as tx:
        tx.run("UPDATE events SET detail = '{}'")
    [row] = journal.query("SELECT event, detail FROM events")
    assert row == {"event": "received", "detail": "{}"}
