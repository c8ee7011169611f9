"""Opening the journal the settings name: a bad ROUTER_JOURNAL stops `serve` with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        ("mysql://router@db/referrals", "must be empty (SQLite) or postgresql://"),
        ("postgresql://router:hunter2@db/referrals", "must not contain a password"),
        ("postgresql://router@127.0.0.1:1/referrals", "cannot reach the journal database"),
    ],
)
def test_a_bad_journal_setting_stops_serve_with_one_line(
    journal: str, message: str, tmp_path: Path
) -> None:
    """A ROUTER_JOURNAL that is not a PostgreSQL URL, carries a password, or cannot be
    reached stops `serve` at start: exit 2, one line saying why, never the password."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    env.update(ROUTER_JOURNAL=journal, ROUTER_STATE_DIR=str(tmp_path), ROUTER_HTTP="")
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr
