"""The listener's own short cuts through aiosmtpd (a plain address parsed without email's
token tree, a session's `dir()` limited to its commands) change nothing a client sees."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from router.inbox.smtp import SmtpInbox
from router.inbox.smtp_session import ListenerOptions, ListenerSMTP
from router.journal.sqlite import SqliteJournal as Journal
from tests.servers.smtp import free_port

_ARGUMENTS = [
    "<a@b.c>",
    "<a@b.c> SIZE=10",
    " <a@b.c>",
    "<a.b+c@x-y.example> BODY=8BITMIME SIZE=5",
    "<a@b.c>  SIZE=1 ",
    "<a@b.c> ",
    "<a@b>",
    "<a@b.c>BODY=8BITMIME",
    "<a@b.c> (a comment) SIZE=1",
    "<>",
    '<"q x"@b.c>',
    "<@relay.example:a@b.c>",
    "<a..b@c.d>",
    "<.a@b.c>",
    "<a@[192.0.2.1]>",
    "<A_B@C_D.e>",
    "a@b.c",
    "<a@b.c",
    "<@>",
    "<" + "x" * 65 + "@b.c>",
    "<" + "x" * 64 + "@b.c> SIZE=3",
    "",
]


@pytest.mark.parametrize("limit", [0, 64])
def test_addresses_parse_as_aiosmtpd_parses_them(limit: int) -> None:
    """For plain and unusual addresses alike (with parameters, comments, quotes, routes,
    literals, malformed, over the local-part limit) the result is aiosmtpd's own."""
    session = ListenerSMTP.__new__(ListenerSMTP)
    session.local_part_limit = limit
    for argument in _ARGUMENTS:
        assert session._getaddr(argument) == SMTP._getaddr(session, argument), argument


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[tuple[SmtpInbox, Journal]]:
    journal = Journal(tmp_path / "state")
    listener = SmtpInbox(
        "127.0.0.1", free_port(), journal, options=ListenerOptions(max_message_bytes=2**20)
    )
    await listener.start()
    yield listener, journal
    await listener.stop()
    journal.close()


async def test_a_session_knows_every_command_and_takes_parameters(
    inbox: tuple[SmtpInbox, Journal], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HELP lists the commands a session with a full `dir()` lists; MAIL with SIZE and BODY, a null
    sender and RCPTs plain and quoted are taken, and the message is stored with them."""
    listener, journal = inbox

    def converse() -> tuple[bytes, list[tuple[int, bytes]]]:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            client.ehlo()
            _, help_text = client.docmd("HELP")
            replies = [
                client.docmd("MAIL FROM:<> SIZE=200 BODY=8BITMIME"),
                client.docmd("RCPT TO:<prevent@lewisham.gov.uk>"),
                client.docmd('RCPT TO:<"safeguarding team"@lewisham.gov.uk>'),
                client.docmd("RCPT TO:<@>"),
                client.data(b"Message-ID: <a@b.c>\r\n\r\nhello\r\n"),
            ]
        return help_text, replies

    help_text, replies = await asyncio.to_thread(converse)
    monkeypatch.setattr(ListenerSMTP, "__dir__", object.__dir__)
    full_help, _ = await asyncio.to_thread(converse)
    assert help_text == full_help and b" DATA " in help_text and b" RCPT " in help_text
    assert [code for code, _ in replies] == [250, 250, 250, 553, 250]
    rows = journal.query("SELECT envelope_rcpts FROM messages")
    assert [json.loads(row["envelope_rcpts"]) for row in rows] == 2 * [
        ["prevent@lewisham.gov.uk", '"safeguarding team"@lewisham.gov.uk'],
    ]
