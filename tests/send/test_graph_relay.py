"""The graph:// relay against the loopback Graph: what Graph is sent, and how its answers
become the relay's failures."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from router.send.graph_relay import GraphRelay
from router.send.relay import PermanentDeliveryError, RelaySecurityError
from router.send.relays import make_relay
from tests.conftest import make_settings
from tests.mailfactory import build_email
from tests.servers.graph import GraphServer
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

MAILBOX = "referrals@council.example"
FORCE = "preventreferrals@met.pnn.police.uk"


def outgoing(number: int = 1, *, attachment: bytes | None = None, to: str = FORCE) -> bytes:
    """A forward as the router writes it: From the mailbox, its own Message-ID, References."""
    raw = build_email(
        sender=MAILBOX,
        to=[to],
        message_id=f"<fwd-{number}@council.example>",
        attachments=[("referral.pdf", attachment, "application/pdf")] if attachment else [],
    )
    return b"References: <referral-1@school.example>\r\n" + raw


@pytest.fixture
async def relay(
    tmp_path: Path, graph_server: GraphServer, token_server: TokenServer
) -> AsyncIterator[Callable[..., Any]]:
    """Make a graph:// relay for the loopback Graph's mailbox."""
    made: list[GraphRelay] = []

    def make(**overrides: Any) -> GraphRelay:
        settings = make_settings(
            tmp_path,
            relay=f"graph://{MAILBOX}",
            from_address="",
            graph_url=graph_server.base_url,
            oauth_provider="generic",
            oauth_token_url=token_server.token_url,
            oauth_client_id=CLIENT_ID,
            oauth_client_secret=CLIENT_SECRET,
            **overrides,
        )
        from router.oauth.sources import OAuthSources

        sources = OAuthSources(settings)
        made.append(make_relay(settings, sources.relay))  # type: ignore[arg-type]
        return made[-1]

    graph_server.mailbox(MAILBOX)
    yield make
    for item in made:
        await item.close()


async def test_mail_goes_byte_for_byte_through_send_mail(relay, graph_server, token_server):  # type: ignore[no-untyped-def]
    """The message is posted to sendMail as base64 MIME and Graph gets it byte for byte, its
    Message-ID and References kept, with a token for Graph's own scope."""
    message = outgoing()
    await relay().send(message, sender=MAILBOX, recipients=[FORCE])
    [sent] = graph_server.sent
    assert sent.mime == message and sent.via == "sendMail" and sent.recipients == [FORCE]
    assert token_server.requests[-1]["scope"] == f"{graph_server.origin}/.default"


async def test_an_envelope_recipient_missing_from_the_headers_is_added_as_bcc(relay, graph_server):  # type: ignore[no-untyped-def]
    """Graph sends to the headers' addresses, so an envelope-only recipient travels as Bcc."""
    await relay().send(outgoing(), sender=MAILBOX, recipients=[FORCE, "copy@police.example"])
    assert sorted(graph_server.sent[0].recipients) == ["copy@police.example", FORCE]


async def test_over_four_megabytes_goes_through_a_draft_and_an_upload_session(relay, graph_server):  # type: ignore[no-untyped-def]
    """A message whose request would pass 4 MB becomes a draft without its attachment, the
    attachment is uploaded in ranges, and the draft is sent: the bytes arrive whole."""
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 20000  # about 5 MB
    message = outgoing(attachment=pdf)
    await relay().send(message, sender=MAILBOX, recipients=[FORCE])
    [sent] = graph_server.sent
    assert sent.via == "draft" and sent.attachments == [("referral.pdf", "application/pdf", pdf)]
    draft = email.message_from_bytes(sent.mime, policy=email.policy.compat32)
    assert draft["Message-ID"] == "<fwd-1@council.example>"
    assert len(base64.b64encode(sent.mime)) < 4 * 1024 * 1024
    uploads = [s for s in graph_server.seen if s.method == "PUT"]
    assert len(uploads) >= 2 and all(s.token is None for s in uploads)
    assert graph_server.seen[-1].path.endswith("/send")


async def test_a_refused_recipient_is_that_mails_failure(relay, graph_server):  # type: ignore[no-untyped-def]
    """Graph refusing the recipients (400 ErrorInvalidRecipients) fails that mail for good."""
    with pytest.raises(PermanentDeliveryError) as refused:
        await relay().send(outgoing(to="nobody"), sender=MAILBOX, recipients=["nobody"])
    assert refused.value.code == 400 and "ErrorInvalidRecipients" in refused.value.detail
    assert graph_server.sent == []


async def test_sending_as_another_address_without_permission_is_the_set_ups_fault(
    relay, graph_server
):  # type: ignore[no-untyped-def]
    """A From the mailbox may not send as (403 ErrorSendAsDenied) is a set-up error: the mail
    is kept for retry and the operator alerted, not failed."""
    message = outgoing().replace(f"From: {MAILBOX}".encode(), b"From: other@council.example")
    with pytest.raises(RelaySecurityError) as refused:
        await relay().send(message, sender="other@council.example", recipients=[FORCE])
    assert refused.value.code == 403 and "ErrorSendAsDenied" in refused.value.detail


async def test_retry_after_is_honoured_and_four_requests_at_most_in_flight(relay, graph_server):  # type: ignore[no-untyped-def]
    """Eight mails at once, the first answer a 429 with Retry-After: all are sent, none before
    the time has passed, never more than four in flight to the mailbox."""
    graph_server.latency = 0.2
    graph_server.throttle(1, retry_after=1, path_part="/sendMail")
    sender = relay()
    await asyncio.gather(
        *(sender.send(outgoing(n), sender=MAILBOX, recipients=[FORCE]) for n in range(8))
    )
    assert len(graph_server.sent) == 8
    assert graph_server.early == [] and graph_server.over_concurrency == []
    throttled = [s.at for s in graph_server.seen if s.status == 429]
    accepted = [s.at for s in graph_server.seen if s.status == 202]
    # Those already in flight are throttled too; none is accepted before Retry-After passed.
    assert 1 <= len(throttled) <= 4 and min(accepted) - throttled[0] >= 0.9


async def test_probe_reads_the_send_permission(relay, token_server):  # type: ignore[no-untyped-def]
    """The start-up probe says when the application's token lacks Mail.Send."""
    assert "Mail.Send" in await relay().probe()
    token_server.roles = ["Mail.ReadWrite"]
    with pytest.raises(RelaySecurityError, match=r"Mail\.Send"):
        await relay().probe()
