"""Deciding stored messages: one outcome per message, claims, attempts and the ack cap."""

from __future__ import annotations

from router.journal.records import NewMail

RAW = b"Message-ID: <one@school.example>\r\nFrom: a@school.example\r\n\r\nhello\r\n"


def _mail(kind: str = "forward") -> NewMail:
    return NewMail(kind, "PR-x-1", "referrals@router.example", ("p@police.example",), "<m@r>", b"x")


def test_decisions_are_recorded_once(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """A second record of a message's decisions (after a crash, or from another node) records
    nothing: one outcome, one set of mails."""
    journal = journal_factory()
    message_id = journal.accept_sync(RAW)
    [stored] = journal.received()
    assert stored.id == message_id and stored.attempts == 0
    assert journal.count_attempt(message_id) == 1
    decision = [(f"PR-{message_id}-1", {"outcome": "forward", "area": "lewisham"})]
    journal.record_decisions(message_id, decision, [_mail()], rules_version="v1")
    journal.record_decisions(message_id, decision, [_mail(), _mail("ack")], rules_version="v2")
    assert [r["outcome"] for r in journal.query("SELECT outcome FROM decisions")] == ["forward"]
    assert len(journal.query("SELECT id FROM outbox")) == 1
    assert journal.received() == []


def test_quarantine_and_reprocess(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """A quarantined undecided message goes back to the queue with a fresh attempt count."""
    journal = journal_factory()
    message_id = journal.accept_sync(RAW)
    journal.count_attempt(message_id)
    journal.quarantine(message_id, "boom")
    assert journal.received() == []
    assert journal.reprocess(message_id)
    [stored] = journal.received()
    assert stored.attempts == 0
    assert not journal.reprocess(message_id)  # not quarantined any more


def test_ack_cap_counts_every_acknowledgment(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """The per-sender cap allows exactly `limit` acknowledgments a day; 0 means no cap."""
    journal = journal_factory()
    assert [journal.count_ack("a@school.example", 2) for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert all(journal.count_ack("b@school.example", 0) for _ in range(5))
