"""Group commit of concurrent intakes: messages stored at the same moment share one commit,
each is stored exactly once, and a commit that fails fails every message it held."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from router.journal.protocol import Journal
from router.journal.sqlite import SqliteJournal
from tests.journal.backends import (
    break_message_storage,
    count_syncs,
    journal_locked,
    stored_bytes,
)

SESSIONS = 12


def _raw(number: int) -> bytes:
    return f"Message-ID: <{number}@school.example>\r\n\r\nreferral {number}\r\n".encode()


def _keys(journal: Journal) -> list[str | None]:
    """Inbox keys of concurrent messages, two of them the same inbox copy. SQLite: none (as
    SMTP gives), because its one connection serves the key look-up only between commits,
    and the test holds a commit back until every message is waiting for it."""
    if isinstance(journal, SqliteJournal):
        return [None] * SESSIONS
    return [f"imap:1:{number}" for number in range(SESSIONS - 1)] + ["imap:1:0"]


def _accept_together(
    journal: Journal, keys: list[str | None], *, release: Callable[[], bool]
) -> list[Future[str]]:
    """Start one accept per key in threads while the journal is locked, and unlock it once
    `release` says so (all of them are waiting for the commit, or have given up)."""
    group = journal.intake_commits  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=len(keys)) as pool, journal_locked(journal):
        futures = [
            pool.submit(journal.accept_sync, _raw(number), source_key=key)
            for number, key in enumerate(keys)
        ]
        with group.changed:
            assert group.changed.wait_for(release, timeout=60)
    return futures


def test_concurrent_intakes_share_commits_and_store_each_once(journal_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Twelve messages stored at once are all stored, each once (on PostgreSQL two of them
    are the same inbox copy: stored once, both callers get its id), in fewer commits than
    messages; SQLite syncs each file once and the messages folder once per commit."""
    journal = journal_factory()
    group = journal.intake_commits
    synced = count_syncs(monkeypatch)
    keys = _keys(journal)
    futures = _accept_together(journal, keys, release=lambda: group.submitted == SESSIONS)
    ids = [future.result() for future in futures]
    distinct = len(set(keys)) if keys[0] else SESSIONS
    assert len(set(ids)) == distinct
    if keys[0]:
        assert ids[0] == ids[-1]
        rows = journal.query("SELECT id, source_key FROM messages")
        assert sorted((row["source_key"], row["id"]) for row in rows) == sorted(
            set(zip(keys, ids, strict=True))
        )
    assert len(journal.query("SELECT id FROM messages")) == distinct
    assert stored_bytes(journal) == distinct
    assert [journal.raw_message(message_id) for message_id in ids[:distinct]] == [
        _raw(number) for number in range(distinct)
    ]
    assert group.items == SESSIONS
    assert group.commits < SESSIONS
    if isinstance(journal, SqliteJournal):
        assert synced.count("file") == SESSIONS
        assert synced.count("dir") == group.commits
    print(f"group commit: {SESSIONS} concurrent intakes in {group.commits} commits")


def test_a_failed_group_commit_fails_every_message_and_keeps_no_bytes(journal_factory) -> None:  # type: ignore[no-untyped-def]
    """When the shared commit fails (SQLite: locked past its busy timeout; PostgreSQL: the
    bytes refused), every message in it fails (the inbox answers 451) and none is kept."""
    journal = journal_factory()
    group = journal.intake_commits
    keys = _keys(journal)
    if isinstance(journal, SqliteJournal):
        # Give up after 0.3 s, not the 5 s in use: the failure is the same, sooner.
        journal.database.query("PRAGMA busy_timeout=300")
        release = lambda: group.items == SESSIONS  # noqa: E731 - every commit gave up
    else:
        break_message_storage(journal)
        release = lambda: group.submitted == SESSIONS  # noqa: E731
    futures = _accept_together(journal, keys, release=release)
    for future in futures:
        with pytest.raises(Exception, match=r"(?i)locked|refuse|violat"):
            future.result()
    assert group.commits < SESSIONS
    assert journal.query("SELECT id FROM messages") == []
    assert stored_bytes(journal) == 0
