"""Two routers on one PostgreSQL journal: throughput with one node and with two, and the
takeover time after a node is killed.

Starts a throwaway PostgreSQL (Debian's package, as the tests do), an SMTP capture relay and
real `referral-router serve` processes sharing the journal, pushes N referrals through their
SMTP listeners (4 clients, spread over the nodes) and times until every forward has reached
the relay. Then, with two nodes, kills one (SIGKILL) just after a burst and times until the
other has finished everything the killed one had claimed.

    python3 benchmarks/two_nodes.py [-n 100]

Run from the repository root (as root, or as a user who can run initdb).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.journal.test_two_nodes import Cluster, _send_any, _wait_for_all  # noqa: E402
from tests.servers.postgres import PostgresServer  # noqa: E402
from tests.servers.smtp import CaptureServer  # noqa: E402


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
        cluster.root.mkdir()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="referrals per run (100)")
    args = parser.parse_args()
    server = PostgresServer()
    server.start()
    root = Path(tempfile.mkdtemp(prefix="router-two-nodes-"))
    try:
        local = _throughput("", root, 1, args.n)
        one = _throughput(server.create_database(), root, 1, args.n)
        two = _throughput(server.create_database(), root, 2, args.n)
        seconds, duplicates = _takeover(server, root, 40)
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"one node, SQLite journal, {args.n} referrals: {local:.1f} referrals/s")
    print(f"one node, PostgreSQL journal:            {one:.1f} referrals/s")
    print(f"two nodes, same PostgreSQL:              {two:.1f} referrals/s")
    print(
        f"takeover after SIGKILL (40 in flight):   all forwarded {seconds:.1f} s after the kill,"
        f" {duplicates} duplicate(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
