"""Nodes seen on a journal: `status` lists each with its heartbeat and what it holds, and
/metrics carries the node's name."""

from __future__ import annotations

from prometheus_client import generate_latest

from router.commands.status import format_status, read_status
from tests.conftest import submit
from tests.mailfactory import build_email


def test_status_lists_every_node_with_what_it_holds(shared_journals) -> None:  # type: ignore[no-untyped-def]
    """`status` shows each node seen recently: name, heartbeat, claims and mailbox."""
    first, second = shared_journals("node-a"), shared_journals("node-b")
    first.accept_sync(b"Message-ID: <1@x>\r\n\r\nhi\r\n")
    assert len(first.received()) == 1
    assert second.hold_mailbox("imaps://inbox@mail.example/INBOX")
    first.heartbeat()
    second.heartbeat()
    report = read_status(first)
    assert [(n.name, n.claimed_messages, n.watching) for n in report.nodes] == [
        ("node-a", 1, ()),
        ("node-b", 0, ("imaps://inbox@mail.example/INBOX",)),
    ]
    text = format_status(report)
    assert "nodes       2 seen in the last 10 minutes" in text
    assert "node-a  heartbeat 0s ago  holds 1 message(s), 0 mail(s), watches no mailbox" in text
    assert "watches imaps://inbox@mail.example/INBOX" in text


async def test_metrics_carry_the_node_name(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """/metrics names the node and counts the claims it holds, on either backend."""
    daemon = await daemon_factory(node_name="router-7")
    await submit(daemon, build_email(body="no form"))
    daemon.refresh_gauges()
    text = generate_latest(daemon.metrics.registry).decode()
    assert 'router_node{node="router-7"} 1.0' in text
    assert 'router_claims{kind="message",node="router-7"} 0.0' in text
    await daemon.run_once()
    assert daemon.journal.query("SELECT state FROM messages") == [{"state": "done"}]


def test_a_restarted_router_on_sqlite_watches_its_mailbox_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With SQLite (one owner), a router started after a kill takes the mailbox lease the
    dead process left at once instead of waiting for it to lapse."""
    from router.journal.opener import open_journal
    from tests.conftest import make_settings

    killed = open_journal(make_settings(tmp_path, node_name="before-the-kill"))
    assert killed.hold_mailbox("graph://prevent@council.example/Inbox")
    killed.close()  # no release: the process died holding it
    restarted = open_journal(make_settings(tmp_path, node_name="after-the-kill"))
    try:
        assert restarted.hold_mailbox("graph://prevent@council.example/Inbox")
    finally:
        restarted.close()
