"""A PostgreSQL failover under load: the primary stops dead, its synchronous standby is
promoted, and routers given libpq's several-host URL carry on without being restarted."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from router.send.sender import SENDERS
from tests.journal.test_two_nodes import (
    MET,
    _assert_one_outcome_each,
    _send_any,
    _wait_for_all,
    cluster,
)
from tests.servers.postgres import PostgresServer, postgres_available
from tests.servers.smtp import free_port

__all__ = ["cluster"]  # the fixture, shared with the two-node tests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed"),
]

CLIENTS = 2  # referrers sending at the same time
OUTAGE_SECONDS = 3.0


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[PostgresServer, PostgresServer, str]]:
    """A primary with a database and a synchronous streaming standby of it; yields both and
    the database's name."""
    primary = PostgresServer()
    standby: PostgresServer | None = None
    try:
        primary.start()
        database = primary.create_database().rsplit("/", 1)[1]
        standby = PostgresServer(standby_of=primary)
        standby.start()
        primary.synchronous()
        _until_synchronous(primary)
        yield primary, standby, database
    finally:
        primary.close()
        if standby is not None:
            standby.close()


def _until_synchronous(primary: PostgresServer, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    query = "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'"
    while True:
        with psycopg.connect(primary.url("postgres"), autocommit=True) as connection:
            if connection.execute(query).fetchall():
                return
        assert time.monotonic() < deadline, "the standby never became synchronous"
        time.sleep(0.1)  # polling the server's replication view


class HealthWatch:
    """Polls each node's /healthz until stopped; keeps every answer that was not 200."""

    def __init__(self, ports: list[int]) -> None:
        self.ports, self.failures = ports, []  # type: ignore[var-annotated]
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for port in self.ports:
                url = f"http://127.0.0.1:{port}/healthz"
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                    self.failures.append((port, status, body))
                except OSError as error:
                    self.failures.append((port, None, repr(error)))
                else:
                    assert status == 200
                self.polls += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _seconds_to_forward(relay, number: int, ports: list[int]) -> float:  # type: ignore[no-untyped-def]
    """Send referral `number` (retrying until a node answers 250) and time until its forward
    reaches the relay."""
    started = time.monotonic()
    _send_any(ports, number, seconds=60)
    wanted = f"<referral-{number}@school.example>"
    while True:
        messages = relay.messages
        if any(
            MET in m.rcpt_tos and wanted in str(m.message["References"] or "") for m in messages
        ):
            return time.monotonic() - started
        assert relay.wait_beyond(len(messages), timeout=60), "the forward never came"


@pytest.mark.timeout(300)
def test_a_failover_under_load_loses_nothing(  # type: ignore[no-untyped-def]
    cluster, primary_and_standby: tuple[PostgresServer, PostgresServer, str]
) -> None:
    """Two routers on `postgresql://...@primary,standby/db?target_session_attrs=read-write`
    take referrals from two referrers at once; the primary is stopped (`-m immediate`) and
    the standby promoted: every referral answered 250 is forwarded and acknowledged, one
    outcome each, duplicates at most one per concurrent sender per node, forwards resume
    within 15 s of the promotion without restarting a router, /healthz 200 throughout."""
    primary, standby, database = primary_and_standby
    url = (
        f"postgresql://router@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database}"
        "?target_session_attrs=read-write"
    )
    nodes = cluster(url)
    http = [free_port(), free_port()]
    first = nodes.node("a", ROUTER_HTTP=f"127.0.0.1:{http[0]}")
    second = nodes.node("b", ROUTER_HTTP=f"127.0.0.1:{http[1]}")
    ports = [first.port, second.port]
    health = HealthWatch(http)
    total, failover_at = 40, 12
    next_number = iter(range(total))
    lock = threading.Lock()
    promoted = threading.Event()

    def referrer(turn: int) -> None:
        while True:
            with lock:
                number = next(next_number, None)
            if number is None:
                return
            if number == failover_at:
                primary.crash()
                time.sleep(OUTAGE_SECONDS)  # the failover's detection time: no writable server
                standby.promote()
                promoted.set()
            _send_any(ports[turn:] + ports[:turn], number, seconds=90)

    clients = [threading.Thread(target=referrer, args=(n,)) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    assert promoted.wait(timeout=120)
    resumed = _seconds_to_forward(nodes.relay, total, ports)
    for client in clients:
        client.join(timeout=200)
    forwards, acknowledged = _wait_for_all(nodes.relay, total + 1, seconds=120)
    health.stop()
    assert set(forwards) == {f"<referral-{n}@school.example>" for n in range(total + 1)}
    assert acknowledged == {f"teacher{n}@school.example" for n in range(total + 1)}
    _assert_one_outcome_each(standby.url(database), total + 1)
    forwards, _ = _wait_for_all(nodes.relay, total + 1, seconds=1)
    assert sum(count - 1 for count in forwards.values()) <= SENDERS * len(ports)
    assert resumed < 15, resumed
    assert health.polls > 0 and not health.failures, health.failures
    print(f"failover: a referral sent at the promotion was forwarded {resumed:.1f} s later")


def _backends(admin_url: str, journal) -> set[int]:  # type: ignore[no-untyped-def]
    """The server processes of the journal's pooled connections (its application name)."""
    database = journal.url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(admin_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'referral-router'",
            (database,),
        ).fetchall()
    return {pid for (pid,) in rows}


def _until_gone(admin_url: str, journal, pids: set[int]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while _backends(admin_url, journal) & pids:
        assert time.monotonic() < deadline, "the connection was kept"
        time.sleep(0.05)  # the server notices the client's goodbye


def test_read_only_and_terminated_connections_are_not_used_again(  # type: ignore[no-untyped-def]
    shared_journals, postgres_server: PostgresServer
) -> None:
    """A connection whose server turned read-only (25006, as a demoted primary answers) fails
    that one write and is closed; once the server takes writes again the next write works. A
    connection the server terminated (admin shutdown) is never lent: no call fails on it."""
    from router.journal.records import JournalUnavailable

    journal = shared_journals("a")
    admin = postgres_server.url("postgres")
    journal.heartbeat()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        connection.execute("SELECT pg_reload_conf()")
        try:
            deadline = time.monotonic() + 10
            while True:
                before = _backends(admin, journal)
                try:
                    journal.heartbeat()
                except JournalUnavailable as exc:
                    assert isinstance(exc.__cause__, psycopg.errors.ReadOnlySqlTransaction)
                    break
                assert time.monotonic() < deadline, "the server never turned read-only"
                time.sleep(0.05)  # the reload reaches the session at its next command
        finally:
            connection.execute("ALTER SYSTEM RESET default_transaction_read_only")
            connection.execute("SELECT pg_reload_conf()")
        _until_gone(admin, journal, before - _backends(admin, journal) or before)
        time.sleep(0.2)  # the reload reaches every session
        journal.heartbeat()
        victims = _backends(admin, journal)
        for pid in victims:
            connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _until_gone(admin, journal, victims)
    for _ in range(6):  # more than the pool holds: none of them is a terminated one
        journal.heartbeat()
        assert journal.query("SELECT pg_backend_pid() AS pid")[0]["pid"] not in victims
