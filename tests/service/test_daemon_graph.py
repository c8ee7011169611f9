"""End-to-end through Microsoft Graph, in process: the loopback Graph as inbox and relay, the
real journal and pipeline, tokens from the loopback token endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from router.service.daemon import Daemon
from tests.conftest import make_settings
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.graph import GraphServer
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

MAILBOX = "referrals@council.example"
MET = "preventreferrals@met.pnn.police.uk"


def referral(number: int) -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id=f"<graph-{number}@school.example>",
    )


def graph_settings(tmp_path: Path, graph: GraphServer, tokens: TokenServer, **overrides: Any):  # type: ignore[no-untyped-def]
    """Settings for a daemon whose inbox and relay are the loopback Graph's mailbox."""
    return make_settings(
        tmp_path,
        inbox=f"graph://{MAILBOX}/Inbox",
        relay=f"graph://{MAILBOX}",
        from_address="",
        graph_url=graph.base_url,
        graph_poll_seconds=0.2,
        oauth_provider="generic",
        oauth_token_url=tokens.token_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        **overrides,
    )


async def until(predicate, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition on the Graph server or the journal (checked every 50 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def sent_to(graph: GraphServer, address: str) -> list[bytes]:
    return [s.mime for s in graph.sent if address in s.recipients]


async def test_referrals_are_forwarded_acknowledged_and_moved(
    tmp_path, graph_server, token_server, bundled_rules, journal
):  # type: ignore[no-untyped-def]
    """Mail already in the folder is left there untouched; a referral arriving afterwards is
    forwarded and acknowledged through sendMail as the mailbox, and moved to Processed."""
    graph_server.mailbox(MAILBOX)
    graph_server.deliver(MAILBOX, referral(0))  # there before the router: never processed
    settings = graph_settings(tmp_path, graph_server, token_server, journal=journal)
    assert settings.from_address == MAILBOX
    daemon = Daemon(settings, bundled_rules)
    await daemon.start()
    worker = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.graph.inbox is not None and daemon.graph.inbox.rounds >= 1)
        graph_server.deliver(MAILBOX, referral(1))
        await until(lambda: len(graph_server.folder_messages(MAILBOX, "Processed")) == 1)
        await until(lambda: bool(sent_to(graph_server, "teacher@school.example")))  # the ack
        await until(lambda: bool(sent_to(graph_server, MET)))
        forwards = sent_to(graph_server, MET)
        assert len(forwards) == 1 and b"<graph-1@school.example>" in forwards[0]
        assert all(s.mailbox == MAILBOX for s in graph_server.sent)
        assert graph_server.folder_messages(MAILBOX, "Inbox") == [referral_bytes(graph_server)]
        assert not any(
            b"<graph-0@school.example>" in m for m in (s.mime for s in graph_server.sent)
        )
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(worker, 10)
        await daemon.close()


def referral_bytes(graph: GraphServer) -> bytes:
    [first] = [m for m in graph.folder_messages(MAILBOX, "Inbox")]
    return first


async def test_one_router_at_a_time_watches_the_graph_mailbox(
    tmp_path, graph_server, token_server, bundled_rules, postgres_url
):  # type: ignore[no-untyped-def]
    """Two routers on one PostgreSQL journal: one polls the mailbox, the other stands by;
    a referral is forwarded once and moved once."""
    graph_server.mailbox(MAILBOX)
    daemons = []
    for node in ("node-a", "node-b"):
        settings = graph_settings(
            tmp_path / node, graph_server, token_server, journal=postgres_url, node_name=node
        )
        daemon = Daemon(settings, bundled_rules)
        await daemon.start()
        daemons.append(daemon)
    workers = [asyncio.create_task(d.run()) for d in daemons]
    try:
        await until(lambda: any(d.graph.inbox.rounds >= 1 for d in daemons))
        graph_server.deliver(MAILBOX, referral(1))
        await until(lambda: len(graph_server.folder_messages(MAILBOX, "Processed")) == 1)
        await until(lambda: len(sent_to(graph_server, MET)) == 1)
        states = sorted(d.inbox.state for d in daemons)  # the lease's view
        assert states == ["connected", "standby"]
        assert [d.graph.inbox.rounds > 0 for d in daemons].count(True) == 1
    finally:
        for daemon, worker in zip(daemons, workers, strict=True):
            daemon.stop_event.set()
            await asyncio.wait_for(worker, 10)
            await daemon.close()
