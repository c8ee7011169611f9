"""Finishing messages and picking due mail stay index look-ups as history grows: the
PostgreSQL outbox index by reference, and finish passes over what changed."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from router.journal.records import JournalUnavailable, NewMail
from router.journal.sqlite import SqliteJournal


def _decide(journal, number: int) -> str:  # type: ignore[no-untyped-def]
    """Store and decide one referral with a forward and an acknowledgment."""
    message_id = journal.accept_sync(f"Message-ID: <{number}@school.example>\r\n\r\nx\r\n".encode())
    reference = f"PR-{number}"
    mails = [
        NewMail(
            kind,
            reference,
            "referrals@router.example",
            ("p@police.example",),
            f"<{kind}{number}@router>",
            b"x",
        )
        for kind in ("forward", "ack")
    ]
    decision = [(reference, {"outcome": "forward", "area": "lewisham"})]
    journal.record_decisions(message_id, decision, mails, rules_version="v1")
    return message_id


def test_the_outbox_reference_index_is_in_both_schemas(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """Both journals, migrated, have the index due_mail's acknowledgment hold looks up."""
    journal = journal_factory()
    if isinstance(journal, SqliteJournal):
        rows = journal.query("SELECT name FROM sqlite_master WHERE type = 'index'")
        names = {row["name"] for row in rows}
    else:
        rows = journal.query("SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'")
        names = {row["indexname"] for row in rows}
        [version] = journal.query("SELECT MAX(version) AS v FROM schema_migrations")
        assert version["v"] >= 3
    assert "outbox_reference" in names


def test_a_message_is_finished_when_its_last_mail_leaves_the_queue(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """A message is done once its forward and ack are sent, or its forward failed (the ack
    is held back with it); one with mail still to send stays decided."""
    journal = journal_factory()
    sent, failed, waiting = (_decide(journal, number) for number in range(3))
    assert journal.finish_messages() == []
    journal.mark_sent(f"{sent}.0")
    assert journal.finish_messages() == []  # its ack is still to go
    journal.mark_sent(f"{sent}.1")
    journal.mark_failed(f"{failed}.0", "5.1.1 no such user")
    assert sorted(journal.finish_messages()) == sorted([sent, failed])
    states = {row["id"]: row["state"] for row in journal.query("SELECT id, state FROM messages")}
    assert states == {sent: "done", failed: "done", waiting: "decided"}


def test_the_node_that_sends_the_last_mail_finishes_the_message(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """The message is done in the same commit as its last mail's sent mark, whichever node
    sent it (so a node killed just after leaves nothing undone); that node reports it."""
    node_a, node_b = journal_factory("node-a"), journal_factory("node-b")
    message_id = _decide(node_a, 1)
    assert node_a.finish_messages() == []
    node_b.mark_sent(f"{message_id}.0")
    node_b.mark_sent(f"{message_id}.1")
    [row] = node_a.query("SELECT state FROM messages WHERE id = ?", (message_id,))
    assert row["state"] == "done"
    assert node_a.finish_messages() == []
    assert node_b.finish_messages() == [message_id]
    assert node_b.finish_messages() == []


def test_a_full_pass_finishes_what_no_mark_did(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """A decided message with nothing left to send that no mark finished (a journal from an
    older version) is finished by the first call, and by later full passes."""
    journal = journal_factory()
    message_id = _decide(journal, 1)
    with journal.transaction() as tx:  # as an older version left it
        tx.run("UPDATE outbox SET state = 'sent' WHERE message_id = ?", (message_id,))
    assert journal.finish_messages() == [message_id]


def test_two_last_mails_marked_sent_at_once_finish_the_message(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """Two senders mark the last two mails of one message sent at the same moment (two
    forms in one email, or two nodes): whichever commits second finishes the message, even
    though neither could see the other's mark when it started (PostgreSQL, READ COMMITTED)."""
    journal = journal_factory()
    message_id = _decide(journal, 1)
    first, second = f"{message_id}.0", f"{message_id}.1"
    marking = threading.Thread(target=journal.mark_sent, args=(second,))
    with journal.transaction() as tx:  # what mark_sent(first) does, held open
        tx.run("UPDATE outbox SET state = 'sent' WHERE id = ?", (first,))
        assert journal._finish(tx, [message_id], time.time()) == []  # the other is pending
        marking.start()
        if not isinstance(journal, SqliteJournal):  # SQLite has one writer: it waits anyway
            _wait_until_done_or_waiting_for_a_lock(journal, marking)
    marking.join(timeout=30)
    assert not marking.is_alive()
    [row] = journal.query("SELECT state FROM messages WHERE id = ?", (message_id,))
    assert row["state"] == "done"
    assert journal.finish_messages() == [message_id]


def _wait_until_done_or_waiting_for_a_lock(journal, thread: threading.Thread) -> None:  # type: ignore[no-untyped-def]
    """Until `thread` has finished or a backend of this database waits for a row lock."""
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        waiting = journal.query(
            "SELECT COUNT(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting[0]["n"]:
            return
        thread.join(timeout=0.01)


def _refuse_quarantine(journal, refuse: bool) -> None:  # type: ignore[no-untyped-def]
    """Make the database refuse (or accept again) any write that quarantines a message."""
    with journal.transaction() as tx:
        if isinstance(journal, SqliteJournal):
            if refuse:
                tx.run(
                    "CREATE TRIGGER injected_fault BEFORE UPDATE OF state ON messages"
                    " WHEN NEW.state = 'quarantined'"
                    " BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
            else:
                tx.run("DROP TRIGGER injected_fault")
        elif refuse:
            tx.run(
                "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
            tx.run(
                "CREATE TRIGGER injected_fault BEFORE UPDATE ON messages FOR EACH ROW"
                " WHEN (NEW.state = 'quarantined') EXECUTE FUNCTION injected_fault()"
            )
        else:
            tx.run("DROP TRIGGER injected_fault ON messages")


def test_a_refusal_for_good_is_recorded_whole_or_not_at_all(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """A forward's refusal for good, its held acknowledgment, its message's quarantine and the
    alert commit together: when the quarantine fails none of them is recorded (the forward
    stays pending, to be sent and refused again); when it works, all of them."""
    journal = journal_factory()
    message_id = _decide(journal, 1)
    alert = NewMail(
        "alert", "PR-1", "referrals@router.example", ("review@x.example",), "<a1@r>", b"!"
    )

    def state() -> tuple[str, dict[str, str]]:
        [message] = journal.query("SELECT state FROM messages")
        mails = {
            row["kind"]: row["state"] for row in journal.query("SELECT kind, state FROM outbox")
        }
        return message["state"], mails

    _refuse_quarantine(journal, True)
    with pytest.raises((sqlite3.Error, JournalUnavailable)):  # the backend's own error
        journal.mark_failed(f"{message_id}.0", "550 5.1.1", quarantine="failed", alert=alert)
    assert state() == ("decided", {"forward": "pending", "ack": "pending"})
    _refuse_quarantine(journal, False)
    journal.mark_failed(f"{message_id}.0", "550 5.1.1", quarantine="failed", alert=alert)
    assert state() == ("quarantined", {"forward": "failed", "ack": "failed", "alert": "pending"})
    assert journal.outgoing_data(journal.due_mail(time.time())[0].id) == b"!"
