"""Two real `serve` processes sharing one PostgreSQL journal: kills, takeover, a database
restart, and one watcher per IMAP mailbox."""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from router.send.sender import SENDERS
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.postgres import PostgresServer, postgres_available
from tests.servers.smtp import CaptureServer, free_port
from tests.service.test_lifecycle import RouterProcess, listen_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed"),
]

MET = "preventreferrals@met.pnn.police.uk"
_PDF = fillable_pdf(labelled(complete_referral()))


def _referral(number: int) -> bytes:
    return build_email(
        sender=f"teacher{number}@school.example",
        attachments=[("referral.pdf", _PDF, "application/pdf")],
        message_id=f"<referral-{number}@school.example>",
    )


def _send_any(ports: Sequence[int], number: int, seconds: float = 60) -> None:
    """Send like an MTA with two MX hosts: the first that says 250 has it; retry on 4xx or
    a refused connection (a node killed, a database restarting)."""
    raw = _referral(number)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for port in ports:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
                    client.sendmail(
                        f"teacher{number}@school.example", ["prevent@lewisham.gov.uk"], raw
                    )
                    return
            except (OSError, smtplib.SMTPException):
                continue
        time.sleep(0.1)  # every node refused: an MTA would queue and retry
    raise AssertionError(f"referral {number} never accepted")


class Cluster:
    """Nodes sharing one journal URL, each with its own state directory and SMTP listener."""

    def __init__(self, root: Path, journal_url: str, relay: CaptureServer) -> None:
        self.root, self.journal_url, self.relay = root, journal_url, relay
        self.nodes: dict[str, RouterProcess] = {}

    def node(self, name: str, *, wait_port: int | None = None, **env: str) -> RouterProcess:
        """Start a node; it is up once `wait_port` (default: its SMTP listener) answers."""
        port = listen_port()
        settings = {
            "ROUTER_JOURNAL": self.journal_url,
            "ROUTER_NODE_NAME": name,
            "ROUTER_STATE_DIR": str(self.root / name),
            "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
            "ROUTER_RELAY": self.relay.url,
            "ROUTER_HTTP": "",
            "ROUTER_RETRY_BASE_SECONDS": "0.2",
            "ROUTER_RETRY_MAX_SECONDS": "2",
            **env,
        }
        process = RouterProcess(self.root, settings, wait_port or port)
        self.nodes[name] = process
        process.start()
        return process

    def stop(self) -> None:
        for process in self.nodes.values():
            process.stop()


@pytest.fixture
def cluster(tmp_path: Path, rules_dir: Path) -> Iterator[Callable[[str], Cluster]]:
    import shutil

    shutil.copytree(rules_dir, tmp_path / "rules")
    made: list[tuple[Cluster, CaptureServer]] = []

    def create(journal_url: str) -> Cluster:
        relay = CaptureServer().start()
        made.append((Cluster(tmp_path, journal_url, relay), relay))
        return made[-1][0]

    yield create
    for each, relay in made:
        each.stop()
        relay.stop()


def _wait_for_all(
    relay: CaptureServer, total: int, seconds: float
) -> tuple[Counter[str], set[str]]:
    """Forwards counted by original Message-ID, and the referrers acknowledged, once every
    referral has both (or the time is up)."""
    deadline = time.monotonic() + seconds
    while True:
        forwards: Counter[str] = Counter()
        acknowledged: set[str] = set()
        messages = relay.messages
        for captured in messages:
            if MET in captured.rcpt_tos:
                refs = str(captured.message["References"] or "").split()
                forwards.update(ref for ref in refs if ref.startswith("<referral-"))
            else:
                acknowledged.update(r for r in captured.rcpt_tos if r.startswith("teacher"))
        if (len(forwards) >= total and len(acknowledged) >= total) or time.monotonic() > deadline:
            return forwards, acknowledged
        relay.wait_beyond(len(messages), timeout=max(0.1, deadline - time.monotonic()))


def _journal_rows(url: str, sql: str) -> list[dict[str, object]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as connection:
        return connection.execute(sql).fetchall()


def _assert_one_outcome_each(url: str, total: int) -> None:
    """Once the journal has settled, every message is done with one decision. (The relay
    can have every mail before the journal has settled: a mail accepted just before a
    node or the database died is sent again once its claim is taken back.)"""
    deadline = time.monotonic() + 45
    unsettled = "SELECT COUNT(*) AS n FROM messages WHERE state != 'done'"
    while _journal_rows(url, unsettled)[0]["n"] and time.monotonic() < deadline:
        time.sleep(0.1)
    states = _journal_rows(url, "SELECT state, COUNT(*) AS n FROM messages GROUP BY state")
    assert {row["state"]: row["n"] for row in states} == {"done": total}
    per_message = _journal_rows(
        url, "SELECT message_id, COUNT(*) AS n FROM decisions GROUP BY message_id"
    )
    assert len(per_message) == total and {row["n"] for row in per_message} == {1}


@pytest.mark.timeout(400)
def test_two_nodes_share_the_work_through_three_kills(cluster, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """100 referrals spread over two nodes while one is SIGKILLed three times (restarted twice
    at once, the third time only at the end): every referral is forwarded and acknowledged,
    none lost, duplicates at most the mails the relay had at each kill, one outcome per
    message; the survivor takes over the killed node's claims within 30 s."""
    nodes = cluster(postgres_url)
    victim, survivor = nodes.node("a"), nodes.node("b")
    total, kills = 100, 0
    for number in range(total):
        ports = [victim.port, survivor.port] if number % 2 else [survivor.port, victim.port]
        _send_any(ports, number)
        if number in (24, 49, 74):
            victim.kill()
            kills += 1
            if number != 74:
                victim.start()
                # Let the restarted node finish what it took back before the next kill: a
                # message whose handling in the daemon three kills in a row cut short is
                # quarantined by design (the crash-loop bound), not what this test is about.
                _wait_for_all(nodes.relay, number + 1, seconds=60)
    killed_at = time.monotonic()
    forwards, acknowledged = _wait_for_all(nodes.relay, total, seconds=120)
    taken_over = time.monotonic() - killed_at
    assert set(forwards) == {f"<referral-{n}@school.example>" for n in range(total)}
    assert acknowledged == {f"teacher{n}@school.example" for n in range(total)}
    _assert_one_outcome_each(postgres_url, total)
    forwards, _ = _wait_for_all(nodes.relay, total, seconds=1)  # with any sent again
    # SPEC's one window: a mail the relay took (250) that the journal had not yet recorded as
    # sent. Each kill can catch as many as the victim had with the relay (SENDERS).
    assert sum(count - 1 for count in forwards.values()) <= kills * SENDERS
    print(f"two nodes, 3 kills: all {total} done {taken_over:.1f} s after the last kill")


@pytest.mark.timeout(300)
def test_a_database_restart_under_load_loses_nothing(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL crashes (`-m immediate`) while referrals flow: /readyz says the journal is
    down, the nodes reconnect when it is back, and every referral is forwarded once."""
    server = PostgresServer()
    server.start()
    try:
        url = server.create_database()
        nodes = cluster(url)
        http_port = free_port()
        first = nodes.node("a", ROUTER_HTTP=f"127.0.0.1:{http_port}")
        second = nodes.node("b")
        total = 30
        for number in range(total):
            _send_any([first.port, second.port][:: 1 if number % 2 else -1], number)
            if number == 14:
                server.crash()
                _until_journal_failing(http_port)
                server.start()
        forwards, acknowledged = _wait_for_all(nodes.relay, total, seconds=120)
        assert set(forwards) == {f"<referral-{n}@school.example>" for n in range(total)}
        assert len(acknowledged) == total
        _assert_one_outcome_each(url, total)
        # The unavoidable window between a relay's 250 and the journal's write: each node
        # has up to SENDERS mails in flight when the database dies.
        forwards, _ = _wait_for_all(nodes.relay, total, seconds=1)  # with any sent again
        assert sum(count - 1 for count in forwards.values()) <= 2 * SENDERS
    finally:
        server.close()


def _readyz(port: int) -> tuple[int, dict[str, dict[str, dict[str, object]]]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _until_journal_failing(http_port: int, seconds: float = 10) -> None:
    """Poll /readyz (it answers from the journal checks' last round, once a second) until it
    says the journal is failing."""
    deadline = time.monotonic() + seconds
    while True:
        status, report = _readyz(http_port)
        if status == 503 and report["checks"]["journal"]["ok"] is False:
            return
        assert time.monotonic() < deadline, report
        time.sleep(0.1)  # polling another process's endpoint


def _watcher(url: str, seconds: float = 30) -> str:
    """The node that holds the mailbox lease, once one does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = _journal_rows(url, "SELECT holder FROM mailbox_watchers")
        if rows:
            return str(rows[0]["holder"])
        time.sleep(0.1)  # polling another process's database row
    raise AssertionError("no node took the mailbox")


@pytest.mark.dovecot
@pytest.mark.timeout(200)
def test_one_watcher_per_mailbox_and_takeover(cluster, postgres_url: str, dovecot) -> None:  # type: ignore[no-untyped-def]
    """Two nodes on one Dovecot mailbox: one watches it; when that one is killed the other
    takes over within 30 s, and the mail appended meanwhile is forwarded once."""
    nodes = cluster(postgres_url)
    imap = {
        "ROUTER_INBOX": f"imaps://{dovecot.user}@127.0.0.1:{dovecot.imaps_port}/INBOX",
        "ROUTER_INBOX_PASSWORD": dovecot.password,
        "ROUTER_INBOX_CA_FILE": str(dovecot.ca_file),
    }
    http = {"a": free_port(), "b": free_port()}
    for name, port in http.items():
        nodes.node(name, wait_port=port, ROUTER_HTTP=f"127.0.0.1:{port}", **imap)
    holder = _watcher(postgres_url)
    _until_inbox_state(http[holder], "idle")
    dovecot.append(_referral(1))
    forwards, _ = _wait_for_all(nodes.relay, 1, seconds=60)
    assert forwards == Counter({"<referral-1@school.example>": 1})

    nodes.nodes[holder].kill()
    killed_at = time.monotonic()
    dovecot.append(_referral(2))
    forwards, _ = _wait_for_all(nodes.relay, 2, seconds=60)
    takeover = time.monotonic() - killed_at
    assert forwards == Counter({"<referral-1@school.example>": 1, "<referral-2@school.example>": 1})
    assert _watcher(postgres_url) != holder
    assert takeover < 30 + 10  # the lease (20 s) and a poll, plus deciding and sending
    print(f"IMAP watcher takeover: referral forwarded {takeover:.1f} s after the kill")


def _until_inbox_state(http_port: int, state: str, seconds: float = 30) -> None:
    """Poll a node's /readyz until its inbox reports `state`."""
    deadline = time.monotonic() + seconds
    while _readyz(http_port)[1]["checks"]["inbox"]["state"] != state:
        assert time.monotonic() < deadline, f"the inbox never became {state}"
        time.sleep(0.1)  # polling another process's endpoint
