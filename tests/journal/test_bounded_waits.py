"""Every wait on the shared journal is bounded: a database behind a network black hole (a
proxy that takes bytes and never answers) makes calls fail within the configured limits,
/readyz says so, and the node works again once the database can be reached."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.journal.opener import open_journal
from router.journal.records import JournalUnavailable
from tests.conftest import make_settings
from tests.journal.test_two_nodes import _readyz, _referral, _wait_for_all, cluster
from tests.servers.postgres import postgres_available
from tests.servers.proxy import BlackHoleProxy
from tests.servers.smtp import free_port

__all__ = ["cluster"]  # the fixture, shared with the two-node tests

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")

# Short limits, given in the URL as an operator would.
LIMITS = "statement_timeout=1s&lock_timeout=1s&connect_timeout=2&tcp_user_timeout=2000"
# What a call may take at most: statement_timeout, the client's grace, a watchdog tick.
BOUND_SECONDS = 1 + 2 + 0.5 + 1


@pytest.fixture
def proxy(postgres_server) -> Iterator[BlackHoleProxy]:  # type: ignore[no-untyped-def]
    """A loopback proxy in front of the session's PostgreSQL server."""
    made = BlackHoleProxy(postgres_server.port)
    yield made
    made.close()


def _through(proxy: BlackHoleProxy, postgres_url: str) -> str:
    database = postgres_url.rsplit("/", 1)[1]
    return f"postgresql://router@127.0.0.1:{proxy.port}/{database}?{LIMITS}"


def _timed(call) -> tuple[float, BaseException | None]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_calls_into_a_black_hole_fail_within_the_limits(
    proxy: BlackHoleProxy, postgres_url: str, tmp_path: Path
) -> None:
    """With the database behind a black hole, a heartbeat, a claim and a read each fail
    with JournalUnavailable within the URL's limits (not after minutes of TCP retries), at
    the same time from several threads; once the path is back the same journal works."""
    journal = open_journal(
        make_settings(tmp_path, journal=_through(proxy, postgres_url), node_name="a")
    )
    try:
        journal.heartbeat()
        journal.query("SELECT 1 AS one")
        proxy.black_hole()
        calls = {
            "heartbeat": journal.heartbeat,
            "claim": lambda: journal.received(10),
            "read": lambda: journal.query("SELECT COUNT(*) AS n FROM messages"),
        }
        results: dict[str, tuple[float, BaseException | None]] = {}
        threads = [
            threading.Thread(target=lambda n=name, c=call: results.__setitem__(n, _timed(c)))
            for name, call in calls.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert set(results) == set(calls)
        for name, (seconds, error) in results.items():
            assert isinstance(error, JournalUnavailable), (name, error)
            assert seconds < BOUND_SECONDS + 2, (name, seconds)  # + a connect_timeout
        proxy.restore()
        deadline = time.monotonic() + 15
        while True:
            try:
                journal.heartbeat()
                break
            except JournalUnavailable:
                assert time.monotonic() < deadline, "the journal never came back"
                time.sleep(0.2)  # the pool reconnects in the background
        assert journal.query("SELECT 1 AS one") == [{"one": 1}]
    finally:
        journal.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_node_notices_a_black_hole_and_recovers(  # type: ignore[no-untyped-def]
    cluster, proxy: BlackHoleProxy, postgres_url: str
) -> None:
    """A running node whose database disappears into a black hole says so on /readyz within
    the limits, and once the database can be reached again it is ready and forwards a
    referral without being restarted (no thread is left hanging on the dead path)."""
    nodes = cluster(_through(proxy, postgres_url))
    http = free_port()
    node = nodes.node("a", ROUTER_HTTP=f"127.0.0.1:{http}")
    _until_ready(http)
    proxy.black_hole()
    started = time.monotonic()
    # /readyz answers at once from the background checks: it turns 503 once a write has
    # waited past its bound, well within the statement timeout and the watchdog's margin.
    while (answer := _readyz(http))[1]["checks"]["journal"]["ok"]:
        assert time.monotonic() - started < BOUND_SECONDS + 5, "the black hole went unnoticed"
        time.sleep(0.1)
    status, report = answer
    assert status == 503 and report["checks"]["journal"]["ok"] is False
    assert time.monotonic() - started < BOUND_SECONDS + 5
    time.sleep(BOUND_SECONDS)  # let every journal thread run into the black hole
    proxy.restore()
    _until_ready(http)
    with smtplib.SMTP("127.0.0.1", node.port, timeout=15) as client:
        client.sendmail("teacher1@school.example", ["prevent@lewisham.gov.uk"], _referral(1))
    forwards, acknowledged = _wait_for_all(nodes.relay, 1, seconds=30)
    assert set(forwards) == {"<referral-1@school.example>"}
    assert acknowledged == {"teacher1@school.example"}


def _until_ready(http_port: int, seconds: float = 30) -> None:
    """Poll a node's /readyz until it answers 200."""
    deadline = time.monotonic() + seconds
    while (answer := _readyz(http_port))[0] != 200:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)  # polling another process's endpoint
