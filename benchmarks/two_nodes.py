"""Two routers on one PostgreSQL journal: throughput with one node and with two, and the
takeover time after a node is killed.

Starts a throwaway PostgreSQL (Debian's package, as the tests do, but with `fsync` on, as
production runs it), an SMTP capture relay and real `referral-router serve` processes
sharing the journal, pushes N referrals through their SMTP listeners (4 clients, spread over
the nodes) and times until every forward has reached the relay. One node on SQLite and one
node on PostgreSQL are run alternately (`--rounds` each), so both see the same machine; for
PostgreSQL it counts the statements and commits per referral (pg_stat_statements,
pg_stat_database). Then, with two nodes, kills one (SIGKILL) just after a burst and times
until the other has finished everything the killed one had claimed.

    python3 benchmarks/two_nodes.py [-n 200] [--rounds 3] [--statements 12]

Run from the repository root (as root, or as a user who can run initdb).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.journal.test_two_nodes import Cluster, _send_any, _wait_for_all  # noqa: E402
from tests.servers.postgres import PostgresServer  # noqa: E402
from tests.servers.smtp import CaptureServer  # noqa: E402

_STATEMENTS = (
    "SELECT calls, rows, round(total_exec_time::numeric, 1) AS ms, query"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)"
    " ORDER BY calls DESC"
)


def _push(cluster: Cluster, count: int, first: int = 0) -> None:
    """Send `count` referrals over 4 SMTP clients, spread over the cluster's nodes."""
    ports = [node.port for node in cluster.nodes.values()]

    def send(number: int) -> None:
        turn = number % len(ports)
        _send_any(ports[turn:] + ports[:turn], number)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(first, first + count)))


def _throughput(journal_url: str, root: Path, nodes: int, count: int) -> float:
    """Referrals per second through `nodes` nodes on `journal_url` (empty: SQLite)."""
    relay = CaptureServer().start()
    cluster = Cluster(
        root / f"nodes-{nodes}-{'pg' if journal_url else 'sqlite'}", journal_url, relay
    )
    try:
        cluster.root.mkdir(parents=True)
        shutil.copytree(ROOT / "rules", cluster.root / "rules")
        for number in range(nodes):
            cluster.node(f"node-{number}")
        started = time.monotonic()
        _push(cluster, count)
        forwards, _ = _wait_for_all(relay, count, seconds=600)
        assert len(forwards) == count, f"only {len(forwards)} of {count} forwarded"
        return count / (time.monotonic() - started)
    finally:
        cluster.stop()
        relay.stop()


def _takeover(server: PostgresServer, root: Path, count: int) -> tuple[float, int]:
    """Seconds from killing a node after a burst until every referral was forwarded."""
    relay = CaptureServer().start()
    cluster = Cluster(root / "takeover", server.create_database(), relay)
    try:
        cluster.root.mkdir()
        shutil.copytree(ROOT / "rules", cluster.root / "rules")
        victim = cluster.node("victim")
        cluster.node("survivor")
        _push(cluster, count)
        victim.kill()
        killed = time.monotonic()
        forwards, _ = _wait_for_all(relay, count, seconds=120)
        assert len(forwards) == count
        return time.monotonic() - killed, sum(n - 1 for n in forwards.values())
    finally:
        cluster.stop()
        relay.stop()


def _server_counts(server: PostgresServer, url: str) -> dict[str, float]:
    """Commits and statements so far on the database of `url`."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
        [(commits,)] = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchall()
        [(calls,)] = connection.execute(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)",
            (name,),
        ).fetchall()
    return {"commits": float(commits), "statements": float(calls)}


def _top_statements(server: PostgresServer, url: str, count: int, limit: int) -> list[str]:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
        rows = connection.execute(_STATEMENTS, (name,)).fetchall()[:limit]
    return [
        f"  {calls / count:6.2f}/referral {ms:8.1f} ms  {' '.join(query.split())[:110]}"
        for calls, _, ms, query in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="referrals per run (200)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each journal (3)")
    parser.add_argument("--statements", type=int, default=12, help="top statements shown")
    parser.add_argument("--no-two-nodes", action="store_true", help="skip two nodes, takeover")
    args = parser.parse_args()
    server = PostgresServer(fsync=True, settings={"shared_preload_libraries": "pg_stat_statements"})
    server.start()
    root = Path(tempfile.mkdtemp(prefix="router-two-nodes-"))
    local: list[float] = []
    one: list[float] = []
    per_referral: list[dict[str, float]] = []
    try:
        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for _ in range(args.rounds):  # alternated, so both see the same machine
            local.append(_throughput("", root / f"r{len(local)}", 1, args.n))
            url = server.create_database()
            one.append(_throughput(url, root / f"r{len(one)}", 1, args.n))
            counts = _server_counts(server, url)
            per_referral.append({key: value / args.n for key, value in counts.items()})
        top = _top_statements(server, url, args.n, args.statements)
        if not args.no_two_nodes:
            two = _throughput(server.create_database(), root, 2, args.n)
            seconds, duplicates = _takeover(server, root, 40)
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
    runs = " / ".join(f"{a:.1f}" for a in local)
    print(f"one node, SQLite journal, {args.n} referrals:  {runs} referrals/s")
    runs = " / ".join(f"{a:.1f}" for a in one)
    print(f"one node, PostgreSQL journal (fsync on):   {runs} referrals/s")
    ratios = [pg / sqlite for pg, sqlite in zip(one, local, strict=True)]
    print(
        "PostgreSQL / SQLite, run by run:          "
        + " / ".join(f"{r:.2f}" for r in ratios)
        + f" x (median {statistics.median(ratios):.2f} x)"
    )
    last = per_referral[-1]
    print(
        f"PostgreSQL per referral:                  {last['statements']:.1f} statements,"
        f" {last['commits']:.1f} commits (last run; the busiest statements below)"
    )
    print("\n".join(top))
    if not args.no_two_nodes:
        print(f"two nodes, same PostgreSQL:                {two:.1f} referrals/s")
        print(
            f"takeover after SIGKILL (40 in flight):     all forwarded {seconds:.1f} s after"
            f" the kill, {duplicates} duplicate(s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
