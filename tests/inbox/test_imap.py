"""The IMAP inbox against a real Dovecot: push, catch-up, reconnects, UIDVALIDITY, settling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from router.inbox.imap import ImapConfigError, ImapInbox, parse_source_key, source_key
from router.settings import Settings
from tests.inbox.recording_sink import WAIT, RecordingSink
from tests.servers.dovecot import Dovecot, StallingProxy, require_dovecot

MAILBOX = "testuser@127.0.0.1/INBOX"  # the mailbox `settings_for` names (without TLS)


def mail(n: int, body_bytes: int = 0) -> bytes:
    """A small distinct message (no personal data)."""
    body = f"Referral test message {n}\r\n" + "x" * body_bytes
    return (
        f"From: Sender {n} <sender{n}@example.org>\r\n"
        f"To: prevent@example.gov.uk\r\n"
        f"Subject: Test {n}\r\n"
        f"Message-ID: <test-{n}@example.org>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def settings_for(server: Dovecot, tls: bool = False, **overrides: Any) -> Settings:
    """Settings pointing the inbox at the test server."""
    if tls:
        inbox = f"imaps://{server.user}@localhost:{server.imaps_port}/INBOX"
        overrides.setdefault("inbox_ca_file", server.ca_file)
    else:
        inbox = f"imap://{server.user}@127.0.0.1:{server.imap_port}/INBOX"
    # `all`: these tests are about keeping in sync; test_imap_start.py covers the first connection.
    values: dict[str, Any] = {
        "inbox": inbox,
        "inbox_password": server.password,
        "idle_seconds": 5,
        "imap_start": "all",
    }
    values.update(overrides)
    return Settings(**values)


class Running:
    """A started inbox, its sink and what it reported."""

    def __init__(self, inbox: ImapInbox, sink: RecordingSink) -> None:
        self.inbox, self.sink = inbox, sink
        self.states: list[str] = []
        self.stored_batches = 0

    async def reach(self, state: str, after: int = 0) -> None:
        """Wait until the inbox enters `state` at or after the `after`-th state change."""
        await self.sink.until(lambda: state in self.states[after:])


@asynccontextmanager
async def running(
    settings: Settings, sink: RecordingSink | None = None, **options: Any
) -> AsyncIterator[Running]:
    """Run an `ImapInbox` for the duration of the block, then stop it (bounded)."""
    sink = sink or RecordingSink()
    run: Running | None = None

    def on_state(state: str) -> None:
        assert run is not None
        run.states.append(state)
        asyncio.get_running_loop().create_task(sink.record_state(state))

    def on_stored() -> None:
        assert run is not None
        run.stored_batches += 1

    inbox = ImapInbox(settings, sink, on_stored=on_stored, on_state=on_state, **options)
    run = Running(inbox, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(inbox.run(stop))
    try:
        yield run
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
    assert inbox.state == "stopped"


pytestmark = pytest.mark.timeout(60)


@pytest.mark.dovecot
async def test_push_latency(dovecot: Dovecot) -> None:
    """Mail appended while the inbox IDLEs reaches the sink within seconds, unread on the server."""
    async with running(settings_for(dovecot)) as run:
        await run.reach("idle")
        started = time.monotonic()
        await asyncio.to_thread(dovecot.append, mail(1))
        await run.sink.until(lambda: len(run.sink.raw) == 1)
        latency = time.monotonic() - started
        print(f"IMAP IDLE push latency: {latency:.3f} s")
        assert latency < 3.0
        assert list(run.sink.raw.values()) == [mail(1)]
        assert run.stored_batches == 1
    with dovecot.client() as imap:
        imap.select("INBOX", readonly=True)
        assert imap.uid("SEARCH", "SEEN")[1] == [b""]  # BODY.PEEK never set \Seen


@pytest.mark.dovecot
async def test_catch_up_after_stop(dovecot: Dovecot) -> None:
    """Mail that arrived while the inbox was stopped is stored on start, once, in batches."""
    for n in range(5):
        dovecot.append(mail(n))
    sink = RecordingSink()
    async with running(settings_for(dovecot, imap_batch=2), sink) as run:
        await run.reach("idle")
        assert sorted(sink.accepts) == sorted(sink.keys)
        assert len(sink.raw) == 5
        assert run.stored_batches == 3
    for n in range(5, 7):
        dovecot.append(mail(n))
    async with running(settings_for(dovecot), sink) as run:
        await run.reach("idle")
        assert len(sink.raw) == 7
        assert len(sink.accepts) == 7  # the first five were known by key: not downloaded again
        assert {parse_source_key(k, MAILBOX)[1] for k in sink.keys} == set(range(1, 8))  # type: ignore[index]


@pytest.mark.dovecot
async def test_server_restart_during_idle(dovecot: Dovecot) -> None:
    """A Dovecot restart mid-IDLE: the inbox reconnects and finds mail delivered in the outage."""
    async with running(settings_for(dovecot)) as run:
        await run.reach("idle")
        dovecot.stop()
        await run.reach("backoff")
        dovecot.deliver(mail(1))  # local delivery into the Maildir while IMAP is down
        mark = len(run.states)
        dovecot.start()
        await run.sink.until(lambda: len(run.sink.raw) == 1)
        await run.reach("idle", after=mark)
        assert run.inbox.connections == 2
        dovecot.append(mail(2))
        await run.sink.until(lambda: len(run.sink.raw) == 2)


@pytest.mark.dovecot
async def test_killed_connection(dovecot: Dovecot) -> None:
    """A session the server kills is re-established, and push works again."""
    async with running(settings_for(dovecot)) as run:
        await run.reach("idle")
        mark = len(run.states)
        dovecot.kill_connections()
        await run.reach("connecting", after=mark)
        await run.reach("idle", after=mark)
        assert run.inbox.connections == 2
        dovecot.append(mail(1))
        await run.sink.until(lambda: len(run.sink.raw) == 1)


@pytest.mark.dovecot
async def test_half_open_connection(dovecot: Dovecot) -> None:
    """A connection that goes silent is dropped at the next IDLE re-issue and re-opened."""
    proxy = StallingProxy(dovecot.imap_port)
    port = await proxy.start()
    settings = settings_for(dovecot, inbox=f"imap://{dovecot.user}@127.0.0.1:{port}/INBOX")
    try:
        async with running(settings, command_timeout=1.0) as run:
            await run.reach("idle")
            mark = len(run.states)
            started = time.monotonic()
            proxy.stall()
            dovecot.append(mail(1))  # its EXISTS push is swallowed by the stalled connection
            await run.sink.until(lambda: len(run.sink.raw) == 1, within=5 + 1 + WAIT)
            await run.reach("idle", after=mark)
            print(f"half-open connection replaced after {time.monotonic() - started:.1f} s")
            assert run.inbox.connections == 2
            assert "backoff" in run.states[mark:]
    finally:
        await proxy.close()


@pytest.mark.dovecot
async def test_uidvalidity_change_rekeys(dovecot: Dovecot) -> None:
    """After a UIDVALIDITY change stored mail is re-keyed, never stored twice; new mail is."""
    for n in range(3):
        dovecot.append(mail(n))
    sink = RecordingSink()
    async with running(settings_for(dovecot), sink) as run:
        await run.sink.until(lambda: len(sink.raw) == 3)
        await run.reach("idle")
        mark = len(run.states)
        new_validity = dovecot.reset_uidvalidity()
        await run.reach("idle", after=mark)
        assert len(sink.accepts) == 3
        assert len(sink.rekeys) == 3
        assert {parse_source_key(k, MAILBOX)[0] for k in sink.keys} == {new_validity}  # type: ignore[index]
        dovecot.append(mail(3))
        await sink.until(lambda: len(sink.raw) == 4)
    # A fresh process does not know the old UIDVALIDITY: it re-identifies too.
    newer = dovecot.reset_uidvalidity()
    async with running(settings_for(dovecot), sink) as run:
        await run.reach("idle")
        assert len(sink.accepts) == 4
        assert {parse_source_key(k, MAILBOX)[0] for k in sink.keys} == {newer}  # type: ignore[index]


class FailingOnceSink(RecordingSink):
    """A sink whose first `accept` fails as a full disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def accept(
        self, raw: bytes, *, source_key: str | None = None, envelope_recipients: Sequence[str] = ()
    ) -> str:
        if not self.failures:
            self.failures += 1
            raise OSError(28, "No space left on device")
        return await super().accept(raw, source_key=source_key)


@pytest.mark.dovecot
async def test_storage_failure_keeps_mail_and_retries(dovecot: Dovecot) -> None:
    """When the sink cannot store, the mail stays on the server and is taken on the retry."""
    dovecot.append(mail(1))
    sink = FailingOnceSink()
    async with running(settings_for(dovecot), sink) as run:
        await sink.until(lambda: len(sink.raw) == 1)
        await run.reach("idle")
        assert sink.failures == 1
        assert "backoff" in run.states
    assert dovecot.list_folder("INBOX") == [mail(1)]


@pytest.mark.dovecot
async def test_oversize_is_not_downloaded(dovecot: Dovecot) -> None:
    """A message over max_message_bytes is recorded from its headers; its body is never fetched."""
    dovecot.append(mail(1, body_bytes=4000))
    dovecot.append(mail(2))
    sink = RecordingSink()
    async with running(settings_for(dovecot, max_message_bytes=2048), sink) as run:
        await run.reach("idle")
    assert sink.oversize == [
        {
            "key": sink.oversize[0]["key"],
            "size": len(mail(1, body_bytes=4000)),
            "message_id": "<test-1@example.org>",
            "sender": "sender1@example.org",
        }
    ]
    assert list(sink.raw.values()) == [mail(2)]
    assert sink.oversize[0]["key"] not in sink.accepts


@pytest.mark.dovecot
async def test_settle_moves_to_folders(dovecot: Dovecot) -> None:
    """Recorded outcomes move the inbox copies to Processed and Failed (created on demand)."""
    dovecot.append(mail(1))
    dovecot.append(mail(2))
    dovecot.append(mail(3))
    sink = RecordingSink()
    async with running(settings_for(dovecot), sink) as run:
        await sink.until(lambda: len(sink.raw) == 3)
        await run.reach("idle")
        ids = {raw: message_id for message_id, raw in sink.raw.items()}
        sink.outcomes[ids[mail(1)]] = "Processed"
        sink.outcomes[ids[mail(2)]] = "Failed"
        started = time.monotonic()
        run.inbox.notify_settle()
        await sink.until(lambda: len(sink.settled_ids) == 2)
        print(f"settle latency: {time.monotonic() - started:.3f} s")
        # Still IDLE-ing afterwards, and still receiving.
        dovecot.append(mail(4))
        await sink.until(lambda: len(sink.raw) == 4)
    assert dovecot.list_folder("Processed") == [mail(1)]
    assert dovecot.list_folder("Failed") == [mail(2)]
    assert dovecot.list_folder("INBOX") == [mail(3), mail(4)]


@pytest.mark.dovecot
async def test_settle_after_crash_between_move_and_record(dovecot: Dovecot) -> None:
    """A settlement whose message was already moved (crash before `settled`) counts as settled."""
    uid = dovecot.append(mail(1))
    validity = dovecot.uidvalidity()
    sink = RecordingSink()
    message_id = await sink.accept(mail(1), source_key=f"imap:{validity}:{uid}")
    sink.outcomes[message_id] = "Processed"
    with dovecot.client() as imap:  # the previous run moved it, then died
        imap.create("Processed")
        imap.select("INBOX")
        assert imap.uid("MOVE", str(uid), "Processed")[0] == "OK"
    async with running(settings_for(dovecot), sink):
        await sink.until(lambda: sink.settled_ids == [message_id])
    assert dovecot.list_folder("Processed") == [mail(1)]
    assert sink.accepts == [f"imap:{validity}:{uid}"]  # nothing new was stored


@pytest.mark.dovecot
async def test_settlement_from_an_old_uidvalidity_is_settled(dovecot: Dovecot) -> None:
    """A settlement keyed under an old UIDVALIDITY, its message gone, is recorded as settled."""
    dovecot.append(mail(2))
    sink = RecordingSink()
    gone = await sink.accept(mail(1), source_key=source_key(MAILBOX, 1, 1))
    sink.outcomes[gone] = "Processed"
    async with running(settings_for(dovecot), sink):
        await sink.until(lambda: sink.settled_ids == [gone])
        await sink.until(lambda: len(sink.raw) == 2)
    assert dovecot.list_folder("INBOX") == [mail(2)]
    assert dovecot.list_folder("Processed") == []


@pytest.mark.dovecot
async def test_settle_without_move_capability() -> None:
    """A server without MOVE gets COPY, STORE \\Deleted and UID EXPUNGE instead."""
    require_dovecot()
    server = Dovecot(
        extra_config="imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS"
    )
    server.start()
    try:
        server.append(mail(1))
        with server.client() as imap:
            assert b"MOVE" not in imap.capability()[1][0].split()
        sink = RecordingSink()
        async with running(settings_for(server), sink) as run:
            await sink.until(lambda: len(sink.raw) == 1)
            sink.outcomes[next(iter(sink.raw))] = "Processed"
            run.inbox.notify_settle()
            await sink.until(lambda: len(sink.settled_ids) == 1)
        assert server.list_folder("Processed") == [mail(1)]
        assert server.uids("INBOX") == []
    finally:
        server.close()


@pytest.mark.dovecot
async def test_imaps_with_private_ca(dovecot: Dovecot) -> None:
    """imaps:// verifies the server against ROUTER_INBOX_CA_FILE and then works as usual."""
    dovecot.append(mail(1))
    async with running(settings_for(dovecot, tls=True)) as run:
        await run.sink.until(lambda: len(run.sink.raw) == 1)
        await run.reach("idle")


@pytest.mark.dovecot
async def test_imaps_untrusted_certificate_backs_off(dovecot: Dovecot, tmp_path: Path) -> None:
    """A certificate the CA file does not vouch for is refused; the inbox retries, never raises."""
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    dovecot.append(mail(1))
    async with running(settings_for(dovecot, tls=True, inbox_ca_file=other_ca)) as run:
        await run.reach("backoff")
        assert run.sink.raw == {}


@pytest.mark.dovecot
async def test_wrong_password_backs_off(dovecot: Dovecot) -> None:
    """A refused login is retried with backoff, not raised."""
    async with running(settings_for(dovecot, inbox_password="wrong")) as run:
        await run.reach("backoff")
        assert run.inbox.connections == 0


def test_plain_imap_to_remote_host_is_refused() -> None:
    """Plain-text IMAP to a host that is not on loopback fails at construction, with a reason."""
    settings = Settings(inbox="imap://router@mail.example.org/INBOX", inbox_password="pw")
    with pytest.raises(ImapConfigError, match="imaps://"):
        ImapInbox(settings, RecordingSink())
    allowed = Settings(
        inbox="imap://router@mail.example.org/INBOX", inbox_password="pw", allow_insecure=True
    )
    ImapInbox(allowed, RecordingSink())
    ImapInbox(
        Settings(inbox="imaps://router@mail.example.org/INBOX", inbox_password="pw"),
        RecordingSink(),
    )


def test_settle_folder_must_differ_from_inbox() -> None:
    """Moving settled mail into the inbox folder itself is refused at construction."""
    settings = Settings(
        inbox="imaps://router@mail.example.org/INBOX", inbox_password="pw", failed_folder="inbox"
    )
    with pytest.raises(ImapConfigError, match="differ"):
        ImapInbox(settings, RecordingSink())


def test_missing_password_is_refused() -> None:
    """Without a password the inbox refuses to start."""
    with pytest.raises(ImapConfigError, match="PASSWORD"):
        ImapInbox(Settings(inbox="imaps://router@mail.example.org/INBOX"), RecordingSink())
