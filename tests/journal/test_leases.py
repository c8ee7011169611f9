"""Leases on the database's clock, and the mailbox lease held only by a watcher that works:
a node whose clock runs ahead cannot take live nodes' work, and a watcher that cannot log in
gives the mailbox up so another node reads it."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from router.commands.status import read_status
from router.journal.records import NewMail
from router.service.daemon import Daemon
from tests.conftest import make_settings

RAW = b"Message-ID: <skew@school.example>\r\nFrom: a@school.example\r\n\r\nhello\r\n"
MAILBOX = "imap://u@h/INBOX"


def test_a_node_whose_clock_runs_ahead_cannot_steal_a_live_lease(  # type: ignore[no-untyped-def]
    shared_journals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With node b's clock a minute ahead of the database (and of node a), a's claims on a
    message and a mail and its mailbox stay a's while a is alive; they pass to b only once
    a's lease has really run out on the database's clock."""
    live, skewed = shared_journals("a"), shared_journals("b")
    live.lease_seconds = skewed.lease_seconds = 1.0
    message_id = live.accept_sync(RAW)
    [claimed] = live.received()
    assert live.hold_mailbox(MAILBOX)
    mail = NewMail("forward", "R", "r@router.example", ("p@police.example",), "<m@r>", b"x")
    other_id = live.accept_sync(RAW.replace(b"<skew@", b"<skew2@"))
    live.add_mail(other_id, mail)
    [sending] = live.due_mail(time.time())

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 60.0)  # b's clock runs ahead
    assert [m.id for m in skewed.received()] == [other_id]  # unclaimed: fair game
    assert skewed.due_mail(time.time()) == []
    assert not skewed.hold_mailbox(MAILBOX)
    assert claimed.id == message_id and sending.message_id == other_id

    time.sleep(1.1)  # a stops renewing: its leases run out on the database's clock
    assert {m.id for m in skewed.received()} == {message_id, other_id}  # other_id: its own
    assert [m.id for m in skewed.due_mail(time.time())] == [sending.id]
    assert skewed.hold_mailbox(MAILBOX)


async def _readyz(port: int) -> tuple[int, dict[str, object]]:
    def call() -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(call)


async def _until(condition, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)  # polling daemons' state in this process


@pytest.mark.dovecot
@pytest.mark.timeout(120)
async def test_a_watcher_that_cannot_log_in_gives_the_mailbox_up(  # type: ignore[no-untyped-def]
    dovecot, postgres_url: str, tmp_path: Path, bundled_rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node a holds the mailbox but its password is refused; after the give-up time it lets
    the lease go, node b (whose password works) takes the mailbox and reaches IDLE, and a's
    /readyz and `status` say why a gave it up."""
    import router.inbox.leader as leader

    monkeypatch.setattr(leader, "GIVE_UP_SECONDS", 1.5)
    monkeypatch.setattr(leader, "POLL_SECONDS", 0.2)
    url = f"imaps://{dovecot.user}@127.0.0.1:{dovecot.imaps_port}/INBOX"
    daemons: list[Daemon] = []

    async def node(name: str, password: str) -> Daemon:
        settings = make_settings(
            tmp_path / name,
            journal=postgres_url,
            node_name=name,
            inbox=url,
            inbox_password=password,
            inbox_ca_file=dovecot.ca_file,
            http="127.0.0.1:0",
        )
        daemons.append(Daemon(settings, bundled_rules))
        await daemons[-1].start()
        return daemons[-1]

    try:
        refused = await node("a", "wrong-password")
        await _until(lambda: refused.inbox.holding)
        working = await node("b", dovecot.password)
        await _until(lambda: working.inbox.state == "idle")
        assert refused.inbox.holding is False
        assert "login_refused" in str(refused.inbox.failure)
        _, ready = await _readyz(refused.http.port)
        assert "gave the mailbox up" in str(ready["checks"]["inbox"])  # type: ignore[index]
        report = await asyncio.to_thread(read_status, working.journal)
        nodes = {n.name: n for n in report.nodes}
        assert "gave the mailbox up" in str(nodes["a"].watcher_note)
        assert nodes["b"].watching == (working.inbox.mailbox,)
        assert nodes["b"].watcher_note is None
    finally:
        for daemon in daemons:
            await daemon.close()
