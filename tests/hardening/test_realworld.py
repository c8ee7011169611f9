"""Real third-party emails and broken PDFs: every file gets its decisions, no traceback, no hang.

The files live outside the project (../shared/realworld, see its SOURCES.md); the tests
skip when the folder is absent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REALWORLD, ROOT, submit

FILES = sorted(
    path for folder in ("mail", "pdf-mail") for path in (REALWORLD / folder).glob("*.eml")
)
CONTRACT = {"file", "outcome", "area", "to", "cc", "ack_to", "missing", "reason", "fields"}

RULE_ADDRESSES = {
    address
    for path in (ROOT / "rules" / "areas").glob("*.yaml")
    for address in re.findall(r"[\w.+-]+@[\w.-]+", path.read_text(encoding="utf-8"))
}

pytestmark = pytest.mark.skipif(not FILES, reason="no ../shared/realworld mail folders")


@pytest.mark.slow
def test_route_json_decides_every_file() -> None:
    """`referral-router route --json` over every real file: exit 0, each file decided."""
    env = {
        **os.environ,
        "ROUTER_RULES_DIR": str(ROOT / "rules"),
        "ROUTER_REVIEW_ADDRESS": "review@router.example",
        "ROUTER_FROM_ADDRESS": "referrals@router.example",
    }
    done = subprocess.run(
        [sys.executable, "-m", "router", "route", "--json", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert {record["file"] for record in records} == {str(path) for path in FILES}
    for record in records:
        assert record.keys() >= CONTRACT
        assert record["outcome"] in ("forward", "incomplete", "needs_review", "ignored")
        assert record["reason"]
        named = {"review@router.example", *RULE_ADDRESSES}
        assert set(record["to"]) | set(record["cc"]) <= named


async def test_daemon_decides_every_file(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """Through the daemon (the worker process): every message decided and finished."""
    daemon = await daemon_factory()
    for path in FILES:
        await submit(daemon, path.read_bytes())
    await daemon.run_once()
    states = daemon.journal.query("SELECT state, COUNT(*) AS n FROM messages GROUP BY state")
    assert {row["state"]: row["n"] for row in states} == {"done": len(FILES)}
    decided = daemon.journal.query("SELECT COUNT(DISTINCT message_id) AS n FROM decisions")
    assert decided[0]["n"] == len(FILES)
