"""Retention and privacy of the state directory: purge after ROUTER_RETENTION_DAYS, and
every state file private (0600) in private folders (0700), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email

FORM_NAME = "Referral - Jane Testperson.pdf"
REFERRAL = build_email(
    attachments=[(FORM_NAME, fillable_pdf(labelled(complete_referral())), "application/pdf")]
)


def _state_files(daemon) -> list[Path]:  # type: ignore[no-untyped-def]
    """The stored raw messages and spooled mails of a daemon's journal."""
    journal = daemon.journal
    return [*journal.messages_dir.glob("*.eml"), *journal.spool_dir.glob("*.eml")]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with the most permissive umask: privacy must not depend on the service's umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


async def test_state_tree_is_private(daemon_factory, tmp_path: Path, open_umask: None) -> None:  # type: ignore[no-untyped-def]
    """After a referral flowed, every folder under the state directory is 0700 and every
    file 0600: the journal, its -wal and -shm files, raw messages, spool and the Maildir."""
    state = tmp_path / "state"
    daemon = await daemon_factory(state_dir=state, relay=f"maildir:{state / 'outbox'}")
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    seen = {path.name for path in state.rglob("*")}
    assert {"journal.sqlite3-wal", "journal.sqlite3-shm", "messages", "spool", "new"} <= seen
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path.relative_to(tmp_path)} is {mode:o}"
