"""The graph:// inbox against the loopback Graph, storing into a real journal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from router.graph.client import MailboxGate, make_client
from router.inbox.graph import GraphInbox
from router.journal.graph_sync import GraphSyncStore
from router.journal.mailbox_start import MailboxStarts
from router.journal.opener import open_journal
from router.oauth.factory import make_token_source
from tests.conftest import make_settings
from tests.mailfactory import build_email
from tests.servers.graph import GraphServer
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

MAILBOX = "referrals@council.example"


def mail(number: int, size: int = 0) -> bytes:
    return build_email(message_id=f"<m-{number}@school.example>", body="x" * size or "hello")


class Running:
    """A started inbox, its journal and the Graph server, for one test."""

    def __init__(self, inbox: GraphInbox, journal: Any, graph: GraphServer) -> None:
        self.inbox, self.journal, self.graph = inbox, journal, graph
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(inbox.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 10)

    def stored_ids(self) -> list[str]:
        """The Message-IDs the journal holds, in order of arrival."""
        rows = self.journal.query("SELECT message_id_header FROM messages ORDER BY received_at")
        return [r["message_id_header"] for r in rows]

    async def until(self, predicate: Callable[[], bool], seconds: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not predicate():
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)

    async def rounds(self, count: int) -> None:
        """Wait until `count` more delta rounds have finished."""
        target = self.inbox.rounds + count
        await self.until(lambda: self.inbox.rounds >= target)


@pytest.fixture
async def running(
    tmp_path: Path, graph_server: GraphServer, token_server: TokenServer
) -> AsyncIterator[Callable[..., Any]]:
    """Start a graph:// inbox on the loopback Graph's mailbox (settings may be overridden)."""
    started: list[Running] = []

    async def start(**overrides: Any) -> Running:
        settings = make_settings(
            tmp_path,
            inbox=f"graph://{MAILBOX}/Inbox",
            graph_url=graph_server.base_url,
            graph_poll_seconds=0.2,
            oauth_provider="generic",
            oauth_token_url=token_server.token_url,
            oauth_client_id=CLIENT_ID,
            oauth_client_secret=CLIENT_SECRET,
            **overrides,
        )
        journal = open_journal(settings)
        tokens = make_token_source(settings, MAILBOX, role="inbox", scope=settings.graph_scope)
        client = make_client(settings, tokens, MailboxGate())
        inbox = GraphInbox(
            settings,
            journal,
            client,
            links=GraphSyncStore(journal),
            starts=MailboxStarts(journal),
        )
        started.append(Running(inbox, journal, graph_server))
        return started[-1]

    graph_server.mailbox(MAILBOX)
    yield start
    for router in started:
        await router.stop()
        router.journal.close()


async def test_first_connection_leaves_old_mail_and_a_410_loses_nothing(running, graph_server):  # type: ignore[no-untyped-def]
    """Mail there at the first connection is never stored; after Graph forgets the delta link
    (410), the new delta stores what arrived meanwhile once, and nothing known again."""
    graph_server.deliver(MAILBOX, mail(0))
    router = await running()
    await router.rounds(1)
    graph_server.deliver(MAILBOX, mail(1))
    await router.until(lambda: router.stored_ids() == ["<m-1@school.example>"])
    graph_server.expire_delta_links()
    graph_server.deliver(MAILBOX, mail(2))
    await router.until(lambda: len(router.stored_ids()) == 2)
    await router.rounds(2)  # and later rounds store nothing more
    assert router.stored_ids() == ["<m-1@school.example>", "<m-2@school.example>"]
    assert any(s.status == 410 for s in graph_server.seen)


async def test_delta_link_survives_a_restart(running, graph_server):  # type: ignore[no-untyped-def]
    """A second inbox on the same journal continues from the kept delta link: it neither takes
    the old mail nor stores again what the first one stored."""
    graph_server.deliver(MAILBOX, mail(0))
    first = await running()
    await first.rounds(1)
    graph_server.deliver(MAILBOX, mail(1))
    await first.until(lambda: len(first.stored_ids()) == 1)
    await first.rounds(1)
    await first.stop()
    second = await running()
    graph_server.deliver(MAILBOX, mail(2))
    await second.until(lambda: len(second.stored_ids()) == 2)
    await second.rounds(2)
    assert second.stored_ids() == ["<m-1@school.example>", "<m-2@school.example>"]
    initial = [s for s in graph_server.seen if s.path.endswith("/delta") and "token" not in s.query]
    assert len(initial) == 1  # one initial sync only: the second began from the kept link


async def test_throttling_is_honoured(running, graph_server):  # type: ignore[no-untyped-def]
    """After a 429 with Retry-After, no request reaches the mailbox before the time has passed,
    and the inbox carries on."""
    router = await running(imap_start="all")
    await router.rounds(1)
    graph_server.throttle(2, retry_after=1, path_part="/delta")
    graph_server.deliver(MAILBOX, mail(1))
    await router.until(lambda: router.stored_ids() == ["<m-1@school.example>"])
    assert graph_server.early == []
    throttled = [s for s in graph_server.seen if s.status == 429]
    after = [s for s in graph_server.seen if s.at > throttled[0].at and s.status != 429]
    assert len(throttled) == 2 and after[0].at - throttled[-1].at >= 0.9
    assert router.inbox.detail()["throttled"] == 2


async def test_a_refused_token_is_replaced(running, graph_server, token_server):  # type: ignore[no-untyped-def]
    """A 401 (the token revoked) makes the inbox fetch a new token and go on at once."""
    router = await running(imap_start="all")
    await router.rounds(1)
    fetched = len(token_server.issued)
    graph_server.revoke_tokens()
    graph_server.deliver(MAILBOX, mail(1))
    await router.until(lambda: router.stored_ids() == ["<m-1@school.example>"])
    assert len(token_server.issued) > fetched
    assert any(s.status == 401 for s in graph_server.seen)
    assert router.inbox.failure is None


async def test_a_token_graph_always_refuses_names_the_graph_permission(running, graph_server):  # type: ignore[no-untyped-def]
    """Every token refused (401 again after a new one): the token source says `token_refused`
    and points the admin at the application's Graph permissions, not at the IMAP mailbox
    permission; the inbox stops and stores nothing."""
    router = await running(imap_start="all")
    await router.rounds(1)
    graph_server.refuse_every_token()
    graph_server.deliver(MAILBOX, mail(1))
    tokens = router.inbox._client.tokens
    await router.until(lambda: not tokens.ok)
    health = tokens.health()
    assert health["cause"] == "token_refused"
    assert "Graph permissions" in health["check"] and "Mailbox" not in health["check"]
    assert router.stored_ids() == []


async def test_oversize_mail_goes_to_review_without_download(running, graph_server):  # type: ignore[no-untyped-def]
    """A message over ROUTER_MAX_MESSAGE_BYTES (from its size property) is recorded for review
    from its Message-ID alone; its MIME is never downloaded."""
    router = await running(imap_start="all", max_message_bytes=2048)
    big = graph_server.deliver(MAILBOX, mail(1, size=5000))
    await router.until(lambda: router.stored_ids() == ["<m-1@school.example>"])
    assert not any(s.path.endswith(f"{big}/$value") for s in graph_server.seen)
    [row] = router.journal.query("SELECT size FROM messages")
    assert row["size"] > 2048


async def test_settled_mail_is_moved_once(running, graph_server):  # type: ignore[no-untyped-def]
    """Decided mail is moved to Processed (created at the top level); one already moved before
    its settling was recorded (a crash in between) is recorded as settled, not moved again."""
    router = await running(imap_start="all")
    first = graph_server.deliver(MAILBOX, mail(1))
    graph_server.deliver(MAILBOX, mail(2))
    await router.until(lambda: len(router.stored_ids()) == 2)
    with router.journal.transaction() as tx:
        tx.run("UPDATE messages SET state = 'done'")
    box = graph_server.mailbox(MAILBOX)
    elsewhere = box.add_folder("Elsewhere")
    with graph_server.lock:
        box.move(first, elsewhere.id)  # as if moved just before a crash
    router.inbox.notify_settle()
    await router.until(lambda: len(graph_server.folder_messages(MAILBOX, "Processed")) == 1)
    await router.until(
        lambda: (
            [r["settled"] for r in router.journal.query("SELECT settled FROM messages")] == [1, 1]
        )
    )
    assert graph_server.folder_messages(MAILBOX, "Inbox") == []
    assert len(graph_server.folder_messages(MAILBOX, "Elsewhere")) == 1


async def test_moving_from_imap_to_graph_leaves_the_old_mail_alone(running, graph_server):  # type: ignore[no-untyped-def]
    """A journal that already holds IMAP mail (the council moved from IMAP to Graph) does not
    make the Graph folder's first connection take the mail that is already there."""
    graph_server.deliver(MAILBOX, mail(0))
    router = await running()
    router.journal.accept_sync(mail(7), source_key="imap:1:7")  # from the IMAP route
    await router.rounds(1)
    graph_server.deliver(MAILBOX, mail(1))
    await router.until(lambda: len(router.stored_ids()) == 2)
    await router.rounds(1)
    assert router.stored_ids() == ["<m-7@school.example>", "<m-1@school.example>"]


async def test_the_inbox_runs_again_after_it_stopped(running, graph_server):  # type: ignore[no-untyped-def]
    """An inbox stopped (its mailbox lease lost) and run again (the lease regained) goes on
    polling with the same client."""
    router = await running(imap_start="all")
    await router.rounds(1)
    await router.stop()
    router.stop_event = asyncio.Event()
    router.task = asyncio.create_task(router.inbox.run(router.stop_event))
    graph_server.deliver(MAILBOX, mail(1))
    await router.until(lambda: router.stored_ids() == ["<m-1@school.example>"])
