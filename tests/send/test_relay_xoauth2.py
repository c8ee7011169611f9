"""SMTP AUTH XOAUTH2 from the relay to a real capture server that verifies the token."""

from __future__ import annotations

import pytest

from router.endpoints import parse_endpoint
from router.oauth.cache import CachedTokenSource
from router.oauth.generic import GenericFetcher
from router.send.relay import RelaySecurityError, SmtpRelay
from tests.servers.smtp import CaptureFactory, TlsAuthority
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

MESSAGE = b"From: referrals@router.example\r\nTo: team@example.org\r\nSubject: t\r\n\r\nhi\r\n"


def _relay(url: str, tls_ca: TlsAuthority, tokens: CachedTokenSource) -> SmtpRelay:
    return SmtpRelay(
        parse_endpoint(url, ("smtp", "smtps")),
        user="referrals@router.example",
        password=None,
        ca_file=tls_ca.ca_file,
        allow_insecure=False,
        tokens=tokens,
    )


def _tokens(token_server: TokenServer) -> CachedTokenSource:
    fetcher = GenericFetcher(token_server.token_url, CLIENT_ID, CLIENT_SECRET, "smtp")
    return CachedTokenSource(fetcher, role="relay")


async def test_xoauth2_accepted_after_starttls(
    smtp_capture: CaptureFactory, tls_ca: TlsAuthority, token_server: TokenServer
) -> None:
    """The relay authenticates with AUTH XOAUTH2 over STARTTLS with a token the server verifies,
    and a second send reuses the cached token."""
    server = smtp_capture(tls="starttls")
    server.require_xoauth2("referrals@router.example", token_server.is_valid)
    tokens = _tokens(token_server)
    relay = _relay(server.url, tls_ca, tokens)
    for _ in range(2):
        await relay.send(MESSAGE, sender="referrals@router.example", recipients=["a@example.org"])
    captured = await server.wait_for_async(2)
    assert [c.auth_user for c in captured] == ["referrals@router.example"] * 2
    assert all(c.tls for c in captured)
    assert tokens.fetches == 1 and tokens.ok


async def test_xoauth2_refused_token_keeps_mail_and_reports(
    smtp_capture: CaptureFactory, tls_ca: TlsAuthority, token_server: TokenServer
) -> None:
    """A token the relay refuses (bad signature) is a RelaySecurityError (the mail is kept and
    retried), nothing is sent, and the token source reports `token_refused`."""
    token_server.sign_badly = True
    server = smtp_capture(tls="starttls")
    server.require_xoauth2("referrals@router.example", token_server.is_valid)
    tokens = _tokens(token_server)
    with pytest.raises(RelaySecurityError) as refused:
        await _relay(server.url, tls_ca, tokens).send(
            MESSAGE, sender="referrals@router.example", recipients=["a@example.org"]
        )
    assert refused.value.code == 535
    assert server.messages == [] and server.xoauth2_refusals == 1
    assert tokens.health()["cause"] == "token_refused"
