"""The shared journal through a transaction pooler (PgBouncer, `pool_mode = transaction`): two
transactions of one router may run on different server connections, so nothing may rely on
session state (prepared statements, session advisory locks, SET)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.journal.migrations import latest_version, migrations
from router.send.sender import SENDERS
from tests.conftest import ROOT
from tests.journal.test_two_nodes import (
    _assert_one_outcome_each,
    _journal_rows,
    _send_any,
    _wait_for_all,
    cluster,
)
from tests.servers.pgbouncer import PgBouncer, pgbouncer_available
from tests.servers.postgres import PostgresServer, postgres_available

__all__ = ["cluster"]  # the fixture, shared with the two-node tests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (postgres_available() and pgbouncer_available()),
        reason="PostgreSQL and PgBouncer are not installed",
    ),
]

# What PostgreSQL logs when a client's statements land on another client's session.
_SESSION_MIXUPS = re.compile(
    r"prepared statement \"\S+\" (does not exist|already exists)|bind message supplies"
    r"|advisory lock",
)


@pytest.fixture
def bouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the session's PostgreSQL server."""
    pooler = PgBouncer(postgres_server, pool_mode="transaction").start()
    yield pooler
    pooler.stop()


def _migrate(url: str, password: str, state_dir: Path) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    env.update(
        ROUTER_JOURNAL=url,
        ROUTER_JOURNAL_PASSWORD=password,
        ROUTER_STATE_DIR=str(state_dir),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "router", "journal", "migrate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_migrations_through_a_transaction_pooler(
    bouncer: PgBouncer, postgres_url: str, tmp_path: Path
) -> None:
    """Three `journal migrate` at once through PgBouncer on a new database all finish (none
    waits for a lock left on a pooled connection), the schema is applied once, and a later
    migrate finds nothing to do; the password is never printed."""
    url = bouncer.url(postgres_url)
    runs = [_migrate(url, bouncer.password, tmp_path / f"n{n}") for n in range(3)]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    version = latest_version("postgresql")
    for output in outputs:
        assert f"is at schema version {version}" in output
        assert bouncer.password not in output
    rows = _journal_rows(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in rows] == [m.version for m in migrations("postgresql")]
    again = _migrate(url, bouncer.password, tmp_path / "again")
    assert again.communicate(timeout=60)[0].count("schema version") == 1
    assert again.returncode == 0


@pytest.mark.timeout(240)
def test_two_nodes_through_a_transaction_pooler_survive_a_kill(  # type: ignore[no-untyped-def]
    cluster, bouncer: PgBouncer, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Two nodes whose journal is reached through PgBouncer in transaction mode share 20
    referrals; one is SIGKILLed half-way and the other takes over its claims: every referral
    is forwarded and acknowledged, one outcome each, at most one sent twice, and
    PostgreSQL logged no statement of one client run in another's session."""
    log_before = len(postgres_server.log)
    nodes = cluster(bouncer.url(postgres_url))
    password = {"ROUTER_JOURNAL_PASSWORD": bouncer.password}
    victim, survivor = nodes.node("a", **password), nodes.node("b", **password)
    total = 20
    for number in range(total):
        ports = [victim.port, survivor.port] if number % 2 else [survivor.port, victim.port]
        if number == total // 2:
            victim.kill()
        _send_any(ports, number)
    killed_at = time.monotonic()
    forwards, acknowledged = _wait_for_all(nodes.relay, total, seconds=120)
    assert set(forwards) == {f"<referral-{n}@school.example>" for n in range(total)}
    assert acknowledged == {f"teacher{n}@school.example" for n in range(total)}
    _assert_one_outcome_each(postgres_url, total)
    forwards, _ = _wait_for_all(nodes.relay, total, seconds=1)
    # The promise after a kill: up to one duplicate per concurrent sender of the killed node.
    assert sum(count - 1 for count in forwards.values()) <= SENDERS
    mixups = _SESSION_MIXUPS.findall(postgres_server.log[log_before:])
    assert not mixups, mixups
    print(
        f"through PgBouncer: all {total} done {time.monotonic() - killed_at:.1f} s after the kill"
    )
