"""Several nodes on one PostgreSQL journal: claims, leases, one outcome, a shared ack cap."""

from __future__ import annotations

import threading
import time

import pytest

from router.journal.migrations import migrations
from router.journal.records import NewMail

RAW = b"Message-ID: <one@school.example>\r\nFrom: a@school.example\r\n\r\nhello\r\n"


def _mail(reference: str) -> NewMail:
    return NewMail("forward", reference, "r@router.example", ("p@police.example",), "<m@r>", b"x")


def test_a_claimed_message_is_skipped_by_other_nodes(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """Messages one node claimed are not handed to another while its lease lasts."""
    first, second = shared_journals("a"), shared_journals("b")
    ids = {first.accept_sync(RAW + str(n).encode()) for n in range(6)}
    mine = {stored.id for stored in first.received(limit=4)}
    theirs = {stored.id for stored in second.received(limit=10)}
    assert len(mine) == 4 and len(theirs) == 2
    assert mine | theirs == ids and not mine & theirs


def test_a_dead_nodes_claims_expire_and_another_finishes(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """When a node stops renewing (killed), its claims on messages and mail lapse after the
    lease and another node takes the work; a live node's heartbeat keeps its claims."""
    dead, live = shared_journals("dead"), shared_journals("live")
    dead.lease_seconds = live.lease_seconds = 0.3
    message_id = dead.accept_sync(RAW)
    assert [s.id for s in dead.received()] == [message_id]
    dead.count_attempt(message_id)  # the worker read it, the daemon was handling it
    assert live.received() == []
    time.sleep(0.4)  # the lease runs out: nothing to wait on but the clock
    [taken] = live.received()
    assert taken.id == message_id and taken.attempts == 1
    live.record_decisions(
        message_id,
        [(f"PR-{message_id}-1", {"outcome": "forward"})],
        [_mail("R")],
        rules_version="v",
    )
    [item] = live.due_mail(time.time())
    assert dead.due_mail(time.time()) == []
    live.heartbeat()
    assert dead.due_mail(time.time()) == []
    time.sleep(0.4)
    assert [i.id for i in dead.due_mail(time.time())] == [item.id]


def test_two_nodes_deciding_one_message_record_one_outcome(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """Two nodes recording decisions for one message at the same moment: one wins, the other
    records nothing (no error, no second outcome, no second mail)."""
    first, second = shared_journals("a"), shared_journals("b")
    message_id = first.accept_sync(RAW)
    start = threading.Barrier(2)

    def decide(journal, outcome: str) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        journal.record_decisions(
            message_id,
            [(f"PR-{message_id}-1", {"outcome": outcome})],
            [_mail(f"PR-{message_id}-1")],
            rules_version="v",
        )

    threads = [
        threading.Thread(target=decide, args=(first, "forward")),
        threading.Thread(target=decide, args=(second, "needs_review")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(first.query("SELECT outcome FROM decisions")) == 1
    assert len(first.query("SELECT id FROM outbox")) == 1


def test_ack_cap_counts_across_nodes(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """Nodes counting acknowledgments to one sender at once never exceed the cap together."""
    nodes = [shared_journals(f"n{n}") for n in range(4)]
    allowed: list[bool] = []
    start = threading.Barrier(len(nodes))

    def count(journal) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        allowed.extend(journal.count_ack("a@school.example", 5) for _ in range(5))

    threads = [threading.Thread(target=count, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert allowed.count(True) == 5 and len(allowed) == 20


def test_one_inbox_message_is_stored_once_across_nodes(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """Two nodes storing the same IMAP message (same UIDVALIDITY/UID key) at once get one
    journal id, and the journal keeps it once."""
    nodes = [shared_journals(f"n{n}") for n in range(4)]
    ids: list[str] = []
    start = threading.Barrier(len(nodes))

    def store(journal) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        ids.append(journal.accept_sync(RAW, source_key="imap:1:7"))

    threads = [threading.Thread(target=store, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(ids)) == 1
    assert len(nodes[0].query("SELECT id FROM messages")) == 1
    assert nodes[0].query("SELECT COUNT(*) AS n FROM blobs")[0]["n"] == 1


def test_one_watcher_per_mailbox(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """One node holds a mailbox; another gets it only after the holder releases it or its
    lease lapses; `nodes_seen` says who watches what."""
    first, second = shared_journals("a"), shared_journals("b")
    first.lease_seconds = 0.3
    assert first.hold_mailbox("imap://u@h/INBOX")
    assert not second.hold_mailbox("imap://u@h/INBOX")
    first.heartbeat()
    seen = {node.name: node for node in second.nodes_seen()}
    assert seen["a"].watching == ("imap://u@h/INBOX",)
    time.sleep(0.4)
    assert second.hold_mailbox("imap://u@h/INBOX")
    assert not first.hold_mailbox("imap://u@h/INBOX")
    second.release_mailbox("imap://u@h/INBOX")
    assert first.hold_mailbox("imap://u@h/INBOX")


@pytest.mark.parametrize("nodes", [3])
def test_nodes_starting_together_migrate_once(postgres_url: str, tmp_path, nodes: int) -> None:  # type: ignore[no-untyped-def]
    """Nodes opening a new journal at the same moment apply each migration once (the
    advisory lock makes the others wait), and all of them work."""
    from router.journal.opener import open_journal
    from tests.conftest import make_settings

    opened = []
    errors: list[BaseException] = []
    start = threading.Barrier(nodes)

    def open_node(number: int) -> None:
        start.wait()
        try:
            settings = make_settings(tmp_path / str(number), journal=postgres_url)
            opened.append(open_journal(settings))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_node, args=(n,)) for n in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == [] and len(opened) == nodes
        versions = opened[0].query("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == [
            migration.version for migration in migrations("postgresql")
        ]
    finally:
        for journal in opened:
            journal.close()
