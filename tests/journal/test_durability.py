"""Which commits are fsynced: outcomes and new work durably, bookkeeping (claims, sent
marks, leases) without waiting for the disk, yet still kept when the process is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from router.journal.records import NewMail
from router.journal.sqlite import SqliteJournal
from tests.journal.backends import break_health_probe, count_syncs, stored_bytes

RAW = b"Message-ID: <one@school.example>\r\nFrom: a@school.example\r\n\r\nhello\r\n"


def _mail(kind: str = "forward") -> NewMail:
    return NewMail(kind, "PR-x-1", "referrals@router.example", ("p@police.example",), "<m@r>", b"x")


def test_outcomes_are_full_commits_and_bookkeeping_normal(tmp_path: Path) -> None:
    """Storing a message and recording its decisions commit with synchronous=FULL; claiming
    it, marking its mail sent, and finishing it commit with NORMAL; reading its due mail
    commits nothing (one owner: there is nothing to claim against)."""
    journal = SqliteJournal(tmp_path / "state")
    commits = journal.database.commits

    def step(expected: str, action) -> None:  # type: ignore[no-untyped-def]
        before = dict(commits)
        action()
        assert {mode: commits[mode] - before[mode] for mode in commits} == {
            "FULL": int(expected == "FULL"),
            "NORMAL": int(expected == "NORMAL"),
        }

    try:
        stored: list[str] = []
        step("FULL", lambda: stored.append(journal.accept_sync(RAW)))
        message_id = stored[0]
        step("NORMAL", lambda: journal.count_attempt(message_id))
        decision = [("PR-x-1", {"outcome": "forward", "area": "lewisham"})]
        step(
            "FULL",
            lambda: journal.record_decisions(message_id, decision, [_mail()], rules_version="v1"),
        )
        [item] = journal.due_mail(now=10**10)
        step("none", lambda: journal.due_mail(now=10**10))
        step("NORMAL", lambda: journal.mark_retry(item.id, "4.0.0 later", 0.0))
        step("NORMAL", lambda: journal.mark_sent(item.id))
        step("NORMAL", lambda: journal.finish_messages())
        step("FULL", lambda: journal.quarantine(message_id, "test"))
        step("NORMAL", lambda: journal.heartbeat())
    finally:
        journal.close()


def test_the_mode_is_the_connections_own_while_the_transaction_runs(tmp_path: Path) -> None:
    """Inside a bookkeeping transaction SQLite runs synchronous=NORMAL (1), inside a durable
    one FULL (2), whatever ran before."""
    journal = SqliteJournal(tmp_path / "state")
    try:
        for durable, expected in ((False, 1), (True, 2), (False, 1), (False, 1), (True, 2)):
            with journal.transaction(durable=durable) as tx:
                [row] = tx.rows("PRAGMA synchronous")
            assert row["synchronous"] == expected
    finally:
        journal.close()


def test_postgres_flushes_every_commit(journal_factory, journal: str) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL even a bookkeeping transaction waits for its WAL flush: there the
    database server's own crash would lose commits that did not (sent marks: mail twice)."""
    if not journal:
        return  # SQLite: see the tests above
    opened = journal_factory()
    for durable in (False, True, False):
        with opened.transaction(durable=durable) as tx:
            [row] = tx.rows("SHOW synchronous_commit")
        assert row["synchronous_commit"] == "on"


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from router.journal.sqlite import SqliteJournal

    journal = SqliteJournal(Path(sys.argv[1]))
    message_id = journal.accept_sync(b"Message-ID: <k@x>\\r\\n\\r\\nhi\\r\\n")
    journal.count_attempt(message_id)
    journal.count_attempt(message_id)
    with journal.transaction(durable=False) as tx:
        tx.run("INSERT INTO meta (key, value) VALUES ('last', 'normal')")
    print(message_id, flush=True)
    sys.stdin.read()  # held open until killed
    """
)


def test_a_killed_process_keeps_its_last_bookkeeping_commits(tmp_path: Path) -> None:
    """A process SIGKILLed right after NORMAL commits (two attempts counted, a row) leaves
    them all in the journal: only a power cut, not a crash, can lose them."""
    state = tmp_path / "state"
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        message_id = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    journal = SqliteJournal(state)
    try:
        [row] = journal.query("SELECT attempts FROM messages WHERE id = ?", (message_id,))
        assert row["attempts"] == 2
        assert journal.query("SELECT value FROM meta WHERE key = 'last'") == [{"value": "normal"}]
    finally:
        journal.close()


def test_a_decisions_mails_are_synced_together(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Recording a decision with three mails syncs each spool file once and the spool folder
    once (not a folder sync per file), and every mail's bytes are in place afterwards."""
    journal = SqliteJournal(tmp_path / "state")
    try:
        message_id = journal.accept_sync(RAW)
        synced = count_syncs(monkeypatch)
        mails = [_mail("forward"), _mail("ack"), _mail("review")]
        decision = [("PR-x-1", {"outcome": "forward", "area": "lewisham"})]
        journal.record_decisions(message_id, decision, mails, rules_version="v1")
        monkeypatch.undo()
        assert sorted(synced) == ["dir", "file", "file", "file"]
        assert [journal.outgoing_data(f"{message_id}.{n}") for n in range(3)] == [b"x"] * 3
    finally:
        journal.close()


def test_a_decision_that_cannot_be_recorded_leaves_no_spooled_mail(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """When a decision's transaction fails (here: its reference is taken), none of the mails
    written for it stay behind, and the message is still waiting to be decided."""
    journal = journal_factory()
    first, second = journal.accept_sync(RAW), journal.accept_sync(RAW + b"2")
    decision = [("PR-x-1", {"outcome": "forward", "area": "lewisham"})]
    journal.record_decisions(first, decision, [_mail()], rules_version="v1")
    before = stored_bytes(journal)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        journal.record_decisions(second, decision, [_mail(), _mail("ack")], rules_version="v1")
    assert stored_bytes(journal) == before
    assert [stored.id for stored in journal.received()] == [second]


def test_a_journal_that_just_stored_is_not_probed_again(tmp_path: Path) -> None:
    """The health probe writes nothing while the journal's own durable writes are fresh (a
    message stored just now), so a failure it would find shows only once they are not; on
    an idle journal it writes a file and a row, and reports what broke."""
    journal = SqliteJournal(tmp_path / "state")
    try:
        # A window longer than the machine has been up (the monotonic clock starts at boot):
        # "never wrote" must not read as "wrote at clock zero, which is recent".
        journal.probe_fresh_seconds = time.monotonic() + 3600.0
        journal.probe()  # idle: nothing stored yet, so it really writes
        assert journal.query("SELECT value FROM meta WHERE key = 'health'") == [{"value": "local"}]
        journal.accept_sync(b"Message-ID: <p@x>\r\n\r\nhi\r\n")
        commits = journal.database.commits["FULL"]
        error = break_health_probe(journal)
        journal.probe()  # a message was stored just now: that is the proof
        assert journal.database.commits["FULL"] == commits
        journal.probe_fresh_seconds = 0.0  # as if that store were long ago
        with pytest.raises(OSError) as raised:
            journal.probe()
        assert type(raised.value).__name__ == error
    finally:
        journal.close()
