"""Retention and privacy of the state directory: purge after ROUTER_RETENTION_DAYS, and
every state file private (0600) in private folders (0700), whatever the umask."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.journal.backends import stored_bytes
from tests.mailfactory import build_email

FORM_NAME = "Referral - Jane Testperson.pdf"
REFERRAL = build_email(
    attachments=[(FORM_NAME, fillable_pdf(labelled(complete_referral())), "application/pdf")]
)


def _state_files(daemon) -> int:  # type: ignore[no-untyped-def]
    """How many stored raw messages and spooled mails a daemon's journal keeps."""
    return stored_bytes(daemon.journal)


async def test_purge_removes_bytes_and_traces_keeps_the_audit_rows(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """After retention, raw messages, spool files, the form's file name and the referrer's
    address are gone; reference, outcome, area and timestamps stay."""
    daemon = await daemon_factory(retention_days=0)
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    assert _state_files(daemon) == 3  # the raw message, the forward and the ack
    assert daemon.journal.purge(time.time() - 3600) == 0  # finished, but not old enough yet
    assert daemon.journal.purge(time.time() + 1) == 1
    assert _state_files(daemon) == 0
    [message] = daemon.journal.query("SELECT * FROM messages")
    assert message["state"] == "done" and message["purged_at"]
    assert message["received_at"] <= message["decided_at"] <= message["done_at"]
    [decision] = daemon.journal.query("SELECT * FROM decisions")
    assert decision["reference"].startswith("PR-") and decision["created_at"]
    assert (decision["outcome"], decision["area"]) == ("forward", "lewisham")
    record = json.loads(decision["record"])
    assert record["outcome"] == "forward" and record["to"]
    assert "Jane" not in decision["record"] and "teacher@" not in decision["record"]
    recipients = [r["recipients"] for r in daemon.journal.query("SELECT recipients FROM outbox")]
    assert not any("teacher@" in value for value in recipients)
    assert daemon.journal.purge(time.time() + 2 * 86400) == 0  # once only
    assert daemon.journal.query("SELECT * FROM ack_counts") == []  # earlier days' counts go


async def test_unfinished_and_quarantined_messages_are_kept(daemon_factory, smtp_capture) -> None:  # type: ignore[no-untyped-def]
    """A message still waiting for delivery, or set aside for a person, is not purged."""
    relay = smtp_capture()
    relay.fail_with(451, "later", at="DATA")  # every forward waits
    daemon = await daemon_factory(relay=relay.url, retention_days=0)
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    waiting = daemon.journal.query("SELECT id FROM messages")[0]["id"]
    daemon.journal.quarantine(waiting, "set aside by a test")
    assert daemon.journal.purge(time.time() + 86400) == 0
    assert daemon.journal.raw_message(waiting) is not None


async def test_failed_acknowledgment_does_not_block_the_purge(daemon_factory, smtp_capture) -> None:  # type: ignore[no-untyped-def]
    """A referrer address that refuses mail leaves the message finished, so it is purged."""
    relay = smtp_capture()
    relay.fail_with(550, "no such user", at="RCPT", recipients={"teacher@school.example"})
    daemon = await daemon_factory(relay=relay.url, retention_days=0)
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    states = {r["kind"]: r["state"] for r in daemon.journal.query("SELECT * FROM outbox")}
    assert states == {"forward": "sent", "ack": "failed"}
    assert [r["state"] for r in daemon.journal.query("SELECT state FROM messages")] == ["done"]
    assert daemon.journal.purge(time.time() + 1) == 1


async def test_daemon_purges_on_its_own(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """The running daemon purges finished messages older than ROUTER_RETENTION_DAYS."""
    daemon = await daemon_factory(retention_days=0)
    await submit(daemon, REFERRAL)
    worker = asyncio.create_task(daemon.run())
    try:
        deadline = time.monotonic() + 20
        while daemon.journal.query("SELECT 1 FROM messages WHERE purged_at IS NOT NULL") == []:
            assert time.monotonic() < deadline, "the daemon never purged"
            await asyncio.sleep(0.05)
        assert _state_files(daemon) == 0
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(worker, 10)


@pytest.mark.parametrize("journal", ["sqlite"], indirect=True)  # PostgreSQL keeps no files
async def test_retention_removes_old_orphans_and_keeps_young_ones(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """While running, retention deletes stored, spooled and temporary files that no row names
    once they are an hour old; a younger one may be a store in progress and stays."""
    daemon = await daemon_factory()
    await submit(daemon, REFERRAL)
    journal = daemon.journal
    [stored] = list(journal.messages_dir.glob("*.eml"))
    old = time.time() - 2 * 3600
    orphans = [
        journal.messages_dir / "20260101-0DDF00D5.eml",
        journal.spool_dir / "20260101-0DDF00D5.0.eml",
        journal.tmp_dir / ".20260101-0DDF00D5.eml.1.ab.tmp",
    ]
    for path in orphans:
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    young = journal.messages_dir / "20260101-0DDF00D6.eml"
    young.write_bytes(b"x")
    os.utime(stored, (old, old))  # old, but it has its row

    daemon.retention.maybe_purge()
    assert [path.exists() for path in orphans] == [False, False, False]
    assert young.exists() and stored.exists()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with the most permissive umask: privacy must not depend on the service's umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


async def test_state_tree_is_private(daemon_factory, tmp_path: Path, open_umask: None) -> None:  # type: ignore[no-untyped-def]
    """After a referral flowed, every folder under the state directory is 0700 and every
    file 0600: the journal, its -wal and -shm files, raw messages, spool and the Maildir
    (with a PostgreSQL journal, no message or spool is kept locally at all)."""
    state = tmp_path / "state"
    daemon = await daemon_factory(state_dir=state, relay=f"maildir:{state / 'outbox'}")
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    seen = {path.name for path in state.rglob("*")}
    if daemon.settings.journal:
        assert "new" in seen and not {"messages", "spool", "journal.sqlite3"} & seen
    else:
        assert {"journal.sqlite3-wal", "journal.sqlite3-shm", "messages", "spool", "new"} <= seen
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path.relative_to(tmp_path)} is {mode:o}"
