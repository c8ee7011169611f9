"""/healthz and /readyz answer at once whatever the journal does: a locked SQLite journal, a
PostgreSQL server that is down. Alive stays 200; ready says 503 and why."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.service.daemon import Daemon
from tests.conftest import make_settings
from tests.journal.backends import journal_locked
from tests.servers.postgres import PostgresServer, postgres_available
from tests.service.test_http import fetch

FAST = 0.1  # SPEC section 7: both answer within 100 ms


async def _timed(daemon: Any, path: str, times: int = 5) -> tuple[list[int], list[float]]:
    """`times` requests: their statuses and how long each took."""
    statuses, seconds = [], []
    for _ in range(times):
        started = time.monotonic()
        status, _, _ = await fetch(daemon, path)
        seconds.append(time.monotonic() - started)
        statuses.append(status)
    return statuses, seconds


async def _readyz_journal_failing(daemon: Any, within: float = 15.0) -> dict[str, Any]:
    """Wait until /readyz reports the journal failing; returns that check."""
    deadline = time.monotonic() + within
    while True:
        status, _, body = await fetch(daemon, "/readyz")
        journal = json.loads(body)["checks"]["journal"]
        if status == 503 and journal["ok"] is False:
            return journal  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)  # the verdict turns once the write has waited its bound


def _assert_fast(seconds: list[float]) -> None:
    assert statistics.median(seconds) < FAST, seconds
    assert max(seconds) < 5 * FAST, seconds  # never the journal's seconds-long wait


@pytest.mark.parametrize("journal", [""])  # SQLite: its write lock is the journal's
async def test_health_answers_at_once_while_the_journal_is_locked(daemon_factory):
    """With the SQLite journal's write lock held elsewhere, /healthz is 200 and /readyz 503
    naming the journal, both within 100 ms; once the lock goes, ready again."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    checks = daemon.http.checks
    checks.timeout = 0.3
    daemon.journal.probe_fresh_seconds = 0.0  # every probe writes
    with journal_locked(daemon.journal):
        await asyncio.to_thread(checks._kick.set)  # a round now, which waits on the lock
        journal = await _readyz_journal_failing(daemon)
        assert journal["error"] == "no write within 0.3 s"
        healthz, healthz_seconds = await _timed(daemon, "/healthz")
        readyz, readyz_seconds = await _timed(daemon, "/readyz")
        assert healthz == [200] * 5 and readyz == [503] * 5
        _assert_fast(healthz_seconds)
        _assert_fast(readyz_seconds)
    assert await asyncio.to_thread(checks.next_round)
    assert (await fetch(daemon, "/readyz"))[0] == 200


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it stops (the session's is shared)."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    yield server
    server.close()


async def test_health_answers_at_once_while_postgresql_is_down(
    tmp_path: Path, bundled_rules: Any, own_postgres: PostgresServer
) -> None:
    """With the shared journal's PostgreSQL server stopped, /healthz is 200 and /readyz 503
    naming the journal, both within 100 ms; when it is back, ready again."""
    settings = make_settings(tmp_path, journal=own_postgres.create_database(), http="127.0.0.1:0")
    daemon = Daemon(settings, bundled_rules)
    try:
        await daemon.start()
        await daemon.sandbox.started()
        checks = daemon.http.checks
        checks.timeout = 0.5
        assert await asyncio.to_thread(checks.next_round)
        assert (await fetch(daemon, "/readyz"))[0] == 200
        own_postgres.crash()
        journal = await _readyz_journal_failing(daemon)
        # The pool's error class, or the bound when a connection attempt outlasts it.
        assert journal["error"] in (
            "JournalUnavailable",
            "JournalUnreachable",
            "no write within 0.5 s",
        )
        healthz, healthz_seconds = await _timed(daemon, "/healthz")
        readyz, readyz_seconds = await _timed(daemon, "/readyz")
        assert healthz == [200] * 5 and readyz == [503] * 5
        _assert_fast(healthz_seconds)
        _assert_fast(readyz_seconds)
        own_postgres.start()
        assert await asyncio.to_thread(checks.next_round, 60)
        assert await asyncio.to_thread(checks.next_round, 60)
        assert (await fetch(daemon, "/readyz"))[0] == 200
    finally:
        await daemon.close()
