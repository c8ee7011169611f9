"""`referral-router journal migrate` and `journal copy --to`: moving a journal to PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.journal.opener import open_journal
from tests.conftest import ROOT, make_settings, submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_journal_migrate_reports_the_schema_version(journal: str, tmp_path: Path) -> None:
    """`journal migrate` brings a journal (new or old) to the current schema and says so."""
    env = {"ROUTER_STATE_DIR": str(tmp_path / "state"), "ROUTER_JOURNAL": journal}
    first = _cli("journal", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "schema version" in first.stdout
    assert _cli("journal", "migrate", env=env).stdout == first.stdout  # once is enough


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["sqlite"], indirect=True)  # the source is SQLite
async def test_copy_moves_every_row_and_byte(
    daemon_factory, postgres_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An SQLite journal with finished and waiting messages is copied into a new PostgreSQL
    journal: same rows (audit trail and report figures too), same stored bytes, checked by
    counts; a second copy is refused."""
    daemon = await daemon_factory()
    pdf = fillable_pdf(labelled(complete_referral()))
    for number in range(3):
        await submit(daemon, build_email(attachments=[(f"{number}.pdf", pdf, "application/pdf")]))
    await daemon.run_once()
    await submit(daemon, build_email(body="no form, still waiting"))  # stored, undecided
    await daemon.close()
    env = {"ROUTER_STATE_DIR": str(tmp_path / "state")}

    result = await asyncio.to_thread(_cli, "journal", "copy", "--to", postgres_url, env=env)
    assert result.returncode == 0, result.stderr
    assert "messages 4, decisions 3, outbox 6" in result.stdout

    source = open_journal(make_settings(tmp_path))
    target = open_journal(make_settings(tmp_path / "pg", journal=postgres_url))
    try:
        for table in ("messages", "decisions", "outbox", "ack_counts", "referral_stats"):
            query = f"SELECT * FROM {table} ORDER BY 1"  # noqa: S608
            assert target.query(query) == source.query(query)
        # The audit trail, in its order: every show answers the same after the move.
        trail = "SELECT message_id, reference, mail_id, at, event, detail FROM events ORDER BY seq"
        assert target.query(trail) == source.query(trail) != []
        for row in source.query("SELECT id FROM messages"):
            assert target.raw_message(row["id"]) == source.raw_message(row["id"])
        [waiting] = target.received()
        assert waiting.attempts == 0
    finally:
        source.close()
        target.close()

    again = await asyncio.to_thread(_cli, "journal", "copy", "--to", postgres_url, env=env)
    assert again.returncode == 1 and "not empty" in again.stderr
