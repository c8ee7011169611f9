"""The listener's session bounds, with small limits so they can be reached: DATA stored byte
for byte, sessions per client and overall, idle and slow clients cut off, size cap."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from router.inbox.smtp import SmtpInbox
from router.inbox.smtp_session import ListenerOptions
from router.journal.sqlite import SqliteJournal as Journal
from tests.servers.smtp import free_port

Listener = tuple[SmtpInbox, Journal]


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Start SmtpInbox instances on a real journal with the given options; stop them after."""
    started: list[tuple[SmtpInbox, Journal]] = []

    async def start(**options: object) -> Listener:
        journal = Journal(tmp_path / f"state{len(started)}")
        values: dict[str, object] = {"max_message_bytes": 1024 * 1024, **options}
        inbox = SmtpInbox(
            "127.0.0.1",
            free_port(),
            journal,
            options=ListenerOptions(**values),  # type: ignore[arg-type]
        )
        await inbox.start()
        started.append((inbox, journal))
        return inbox, journal

    yield start
    for inbox, journal in started:
        await inbox.stop()
        journal.close()


def _send(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.mail("teacher@school.example")
        client.rcpt("prevent@lewisham.gov.uk")
        return client.data(raw)


def _stored(journal: Journal) -> list[bytes]:
    rows = journal.query("SELECT id FROM messages ORDER BY received_at")
    return [journal.raw_path(row["id"]).read_bytes() for row in rows]


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nend.\r\n",
        b"Subject: long\r\n\r\n" + b"y" * 100_000 + b"\r\n",
        b"Subject: empty lines\r\n\r\n" + b"\r\n" * 50_000,
        b"Subject: fake end\r\n\r\nline\r\n .\r\nx.\r\n.x\r\n",
    ],
    ids=["dot-stuffing", "long-line", "empty-lines", "near-terminators"],
)
async def test_data_is_stored_byte_for_byte(listener, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    """Whatever its lines (dots at their start, 100,000 octets, tens of thousands empty),
    the message stored is exactly the one sent."""
    inbox, journal = await listener()
    code, _ = await asyncio.to_thread(_send, inbox.port, raw)
    assert code == 250
    assert _stored(journal) == [raw]


async def test_message_over_the_cap_is_refused_and_the_session_goes_on(listener) -> None:  # type: ignore[no-untyped-def]
    """A message over the size cap gets 552 once it has all arrived, nothing is stored,
    and the next message in the same session is taken."""
    inbox, journal = await listener(max_message_bytes=4096)

    def send_two() -> tuple[int, int]:
        with smtplib.SMTP("127.0.0.1", inbox.port, timeout=10) as client:
            client.ehlo()
            client.mail("a@school.example")
            client.rcpt("prevent@lewisham.gov.uk")
            too_big = client.data(b"Subject: big\r\n\r\n" + b"z" * 10_000 + b"\r\n")[0]
            client.mail("a@school.example")
            client.rcpt("prevent@lewisham.gov.uk")
            return too_big, client.data(b"Subject: small\r\n\r\nok\r\n")[0]

    assert await asyncio.to_thread(send_two) == (552, 250)
    assert _stored(journal) == [b"Subject: small\r\n\r\nok\r\n"]


async def test_recipients_past_the_cap_are_refused_and_the_session_goes_on(listener) -> None:  # type: ignore[no-untyped-def]
    """A message takes 100 recipients (RFC 5321's minimum); the next ones get 452 and the
    session goes on, so a client can send the rest in another transaction."""
    inbox, _ = await listener(max_recipients=100)

    def rcpt_codes() -> tuple[list[int], int]:
        with smtplib.SMTP("127.0.0.1", inbox.port, timeout=10) as client:
            client.ehlo()
            client.mail("a@school.example")
            codes = [client.rcpt(f"pupil{n}@school.example")[0] for n in range(102)]
            return codes, client.noop()[0]

    codes, noop = await asyncio.to_thread(rcpt_codes)
    assert codes == [250] * 100 + [452, 452] and noop == 250


def _connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A connection from `source` and the server's first line (its greeting or refusal)."""
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock, sock.makefile("rb").readline()


async def test_sessions_are_bounded_per_client_and_overall(listener) -> None:  # type: ignore[no-untyped-def]
    """One client address may hold 2 sessions, all clients 3; beyond that a connection is
    told 421 and closed; a freed slot is given again."""
    inbox, _ = await listener(max_sessions=3, max_sessions_per_client=2)
    opened: list[socket.socket] = []

    async def connect(source: str = "127.0.0.1") -> bytes:
        sock, first = await asyncio.to_thread(_connect, inbox.port, source)
        opened.append(sock)
        return first

    try:
        assert [await connect(), await connect()] == [
            b"220 referral-router referral-router\r\n"
        ] * 2
        assert (await connect()).startswith(b"421 4.7.0")
        assert (await connect("127.0.0.2")).startswith(b"220")
        assert (await connect("127.0.0.3")).startswith(b"421 4.3.2")
        opened[0].close()
        # Until the server has seen that close a new connection is still refused.
        replies = [await connect() for _ in range(50)]
        assert any(reply.startswith(b"220") for reply in replies)
    finally:
        for sock in opened:
            sock.close()


async def test_idle_and_slow_clients_are_cut_off(listener) -> None:  # type: ignore[no-untyped-def]
    """A client silent for longer than the idle limit is disconnected; one that trickles
    its DATA (each piece in time) is disconnected when the whole transfer overruns."""
    inbox, journal = await listener(idle_seconds=0.5, data_seconds=1.0)

    def idle() -> bytes:
        with socket.create_connection(("127.0.0.1", inbox.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            return reader.read()  # returns when the server closes

    assert await asyncio.to_thread(idle) == b""

    def slow() -> bool:
        with socket.create_connection(("127.0.0.1", inbox.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"HELO x\r\nMAIL FROM:<a@school.example>\r\n")
            sock.sendall(b"RCPT TO:<prevent@lewisham.gov.uk>\r\nDATA\r\n")
            for _ in range(4):
                reader.readline()
            for _ in range(50):
                try:
                    sock.sendall(b"x" * 20_000 + b"\r\n")
                except OSError:
                    return True
                time.sleep(0.2)  # a slow client: each piece within the idle limit
            return False

    assert await asyncio.to_thread(slow)
    assert _stored(journal) == []


def _open_data(port: int, body: bytes) -> tuple[socket.socket, BinaryIO]:
    """A session that has sent DATA and `body`, but not the end of it (holding its bytes):
    its socket and the reader of its replies."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    for command in (b"EHLO a.example", b"MAIL FROM:<t@school.example>", b"RCPT TO:<p@x.example>"):
        sock.sendall(command + b"\r\n")
        while (line := reader.readline())[3:4] == b"-":
            pass
        assert line.startswith(b"250"), line
    sock.sendall(b"DATA\r\n")
    assert reader.readline().startswith(b"354")
    sock.sendall(body)
    return sock, reader


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)  # the listener reads in the same event loop
    raise AssertionError("condition not reached")


async def test_data_held_by_all_sessions_is_bounded(listener) -> None:  # type: ignore[no-untyped-def]
    """While one session holds most of the DATA budget, another is told 451 at DATA (or 421
    when its transfer passes the budget); once the first is stored, the second goes."""
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 900  # about 0.9 MB
    for budget, refusal in ((960_000, b"451 4.3.1"), (1_400_000, b"421 4.3.1")):
        inbox, journal = await listener(max_message_bytes=1024 * 1024, data_budget_bytes=budget)
        admission, port = inbox.admission, inbox.port
        holder, replies = await asyncio.to_thread(_open_data, port, body)
        await _until(lambda: admission.data_held >= len(body) - 2048)  # noqa: B023

        def second() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # noqa: B023
                reader = sock.makefile("rb")
                reader.readline()
                for command in (b"EHLO b.example", b"MAIL FROM:<t@school.example>",
                                b"RCPT TO:<p@x.example>", b"DATA"):  # fmt: skip
                    sock.sendall(command + b"\r\n")
                    while (line := reader.readline())[3:4] == b"-":
                        pass
                    if not line.startswith((b"250", b"354")):
                        return line
                sock.sendall(body + b".\r\n")
                return reader.readline()

        assert (await asyncio.to_thread(second)).startswith(refusal)
        holder.sendall(b".\r\n")
        assert (await asyncio.to_thread(replies.readline)).startswith(b"250")
        holder.close()
        assert (await asyncio.to_thread(_send, port, body))[0] == 250
        assert len(_stored(journal)) == 2
        await _until(lambda: admission.data_held == 0)  # noqa: B023


def test_a_few_addresses_cannot_hold_every_session() -> None:
    """By default one client address may hold a tenth of the sessions: ten addresses, not
    five, are needed to hold them all."""
    options = ListenerOptions(max_message_bytes=1024)
    assert options.max_sessions_per_client * 10 <= options.max_sessions


async def test_open_sessions_are_told_421_when_the_listener_stops(listener) -> None:  # type: ignore[no-untyped-def]
    """At shutdown (SIGTERM) a session that is between commands, and one in the middle of
    its DATA, are told 421 before the connection closes."""
    inbox, _ = await listener()
    idle, _ = await asyncio.to_thread(_connect, inbox.port, "127.0.0.1")
    sending, replies = await asyncio.to_thread(_open_data, inbox.port, b"Subject: x\r\n\r\npart")
    await _until(lambda: len(inbox.admission.sessions) == 2)
    await inbox.stop()
    assert (await asyncio.to_thread(idle.makefile("rb").readline)).startswith(b"421 4.3.2")
    assert (await asyncio.to_thread(replies.readline)).startswith(b"421 4.3.2")
    idle.close()
    sending.close()
