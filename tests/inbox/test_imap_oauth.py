"""The IMAP inbox over AUTHENTICATE XOAUTH2 against a real Dovecot validating real JWTs."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from router.inbox.imap_session import ImapAuthError, ImapSession
from router.oauth.cache import CachedTokenSource
from router.oauth.factory import make_token_source
from router.settings import Settings
from tests.inbox.test_imap import mail, running, settings_for
from tests.servers.dovecot import Dovecot, StallingProxy
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer, entra_error
from tests.service.test_daemon_imap import _until

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(120)]


def oauth_settings(server: Dovecot, token_server: TokenServer, **overrides: Any) -> Settings:
    """Settings for XOAUTH2 with the `generic` provider at the loopback token endpoint."""
    values: dict[str, Any] = {
        "inbox_auth": "oauth2",
        "inbox_password": None,
        "oauth_provider": "generic",
        "oauth_token_url": token_server.token_url,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
    }
    values.update(overrides)
    return settings_for(server, **values)


def tokens_for(settings: Settings) -> CachedTokenSource:
    return make_token_source(settings, settings.inbox_endpoint.user or "", role="inbox")


def _secrets_in(logs: list[dict[str, Any]], token_server: TokenServer) -> list[str]:
    """Log values that hold the client secret or any issued token."""
    text = repr(logs)
    leaked = [CLIENT_SECRET] if CLIENT_SECRET in text else []
    return leaked + [claims["jti"] for claims in token_server.issued if claims["jti"] in text]


async def test_mail_flows_over_xoauth2_and_session_renews(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """Mail arrives over an XOAUTH2 session that re-authenticates with a fresh token before
    each short-lived token expires, and no message is lost or stored twice across renewals."""
    token_server.lifetime = 4  # renewed at 80%: a new session every ~3 s
    settings = oauth_settings(oauth_dovecot, token_server)
    tokens = tokens_for(settings)
    with capture_logs() as logs:
        async with running(settings, tokens=tokens) as run:
            await run.reach("idle")
            await asyncio.to_thread(oauth_dovecot.append, mail(1))
            await run.sink.until(lambda: len(run.sink.raw) == 1)
            await run.sink.until(lambda: run.inbox.connections >= 3, within=20)
            await asyncio.to_thread(oauth_dovecot.append, mail(2))
            await run.sink.until(lambda: len(run.sink.raw) == 2)
    assert sorted(run.sink.raw.values()) == sorted([mail(1), mail(2)])
    assert len(run.sink.accepts) == 2  # each stored once, none fetched again after a renewal
    assert tokens.fetches >= 3
    assert {claims["sub"] for claims in token_server.issued} == {"testuser"}
    assert not [entry for entry in logs if entry["log_level"] in ("warning", "error")]
    assert _secrets_in(logs, token_server) == []


async def test_badly_signed_token_is_refused_and_reported(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """A token Dovecot refuses (bad signature) gives one log line naming the cause and what to
    check, the inbox backs off, and the source reports itself failing."""
    token_server.sign_badly = True
    settings = oauth_settings(oauth_dovecot, token_server)
    tokens = tokens_for(settings)
    with capture_logs() as logs:
        async with running(settings, tokens=tokens) as run:
            await run.reach("backoff")
            assert run.inbox.failure == "token_refused"
    failed = [entry for entry in logs if entry["event"] == "oauth.failed"]
    assert len(failed) == 1
    assert failed[0]["cause"] == "token_refused"
    assert "Add-MailboxPermission" in failed[0]["check"]
    assert not [entry for entry in logs if entry["event"] == "imap.unavailable"]
    health = tokens.health()
    assert health["ok"] is False and health["cause"] == "token_refused"
    assert _secrets_in(logs, token_server) == []


async def test_token_endpoint_refusal_names_cause_and_setting(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """Entra ID's answer for an expired client secret (AADSTS7000222) is logged once as
    `expired_secret` with ROUTER_OAUTH_CLIENT_SECRET to check, and the secret is never logged."""
    token_server.refuse(entra_error(7000222))
    settings = oauth_settings(oauth_dovecot, token_server)
    tokens = tokens_for(settings)
    with capture_logs() as logs:
        async with running(settings, tokens=tokens) as run:
            await run.reach("backoff")
            assert run.inbox.failure == "oauth"
    [failed] = [entry for entry in logs if entry["event"] == "oauth.failed"]
    assert failed["cause"] == "expired_secret"
    assert failed["code"] == "AADSTS7000222"
    assert failed["check"] == "ROUTER_OAUTH_CLIENT_SECRET"
    assert tokens.health()["cause"] == "expired_secret"
    assert _secrets_in(logs, token_server) == []


async def test_expired_and_foreign_tokens_are_refused(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """Dovecot refuses an expired token and a token for another user; a good one logs in."""
    for token in (token_server.mint(lifetime=-30), token_server.mint(subject="someone-else")):
        with pytest.raises(ImapAuthError):
            await ImapSession.open(
                host="127.0.0.1",
                port=oauth_dovecot.imap_port,
                user="testuser",
                token=token,
                folder="INBOX",
                ssl_context=None,
            )
    session = await ImapSession.open(
        host="127.0.0.1",
        port=oauth_dovecot.imap_port,
        user="testuser",
        token=token_server.mint(),
        folder="INBOX",
        ssl_context=None,
    )
    await session.logout()


async def test_token_never_reaches_the_log_at_debug(
    oauth_dovecot: Dovecot, token_server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Even at debug level, neither the token nor its base64 SASL form is logged by the IMAP
    library or the token source."""
    caplog.set_level(logging.DEBUG)
    settings = oauth_settings(oauth_dovecot, token_server)
    tokens = tokens_for(settings)
    token = (await tokens.token()).value
    session = await ImapSession.open(
        host="127.0.0.1",
        port=oauth_dovecot.imap_port,
        user="testuser",
        token=token,
        folder="INBOX",
        ssl_context=None,
    )
    await session.logout()
    sasl = base64.b64encode(f"user=testuser\1auth=Bearer {token}\1\1".encode()).decode()
    for secret in (token, sasl[:40], CLIENT_SECRET):
        assert secret not in caplog.text


async def test_session_returns_after_restart_once_old_token_expired(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """After Dovecot restarts once the token the session used has expired, the inbox logs in
    again with a new token and mail delivered meanwhile arrives."""
    token_server.lifetime = 3
    settings = oauth_settings(oauth_dovecot, token_server)
    async with running(settings, tokens=tokens_for(settings)) as run:
        await run.reach("idle")
        old_expiry = token_server.issued[-1]["exp"]
        await asyncio.to_thread(oauth_dovecot.stop)
        mark = len(run.states)
        await run.reach("backoff", after=mark)
        oauth_dovecot.deliver(mail(1))
        # The one wait on the clock: the old token must really have expired.
        await asyncio.sleep(max(0.0, old_expiry + 1 - time.time()))
        await asyncio.to_thread(oauth_dovecot.start)
        await run.sink.until(lambda: len(run.sink.raw) == 1, within=30)
    assert list(run.sink.raw.values()) == [mail(1)]


async def test_access_token_expired_bye_reconnects_at_once(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """Exchange Online's `BYE Session invalidated - AccessTokenExpired` during IDLE brings the
    session back within a second or two, with a new token, losing and repeating nothing."""
    token_server.lifetime = 600  # no renewal of our own during the test
    proxy = StallingProxy(oauth_dovecot.imap_port)
    port = await proxy.start()
    settings = oauth_settings(
        oauth_dovecot, token_server, inbox=f"imap://testuser@127.0.0.1:{port}/INBOX"
    )
    tokens = tokens_for(settings)
    try:
        async with running(settings, tokens=tokens) as run:
            await run.reach("idle")
            await asyncio.to_thread(oauth_dovecot.append, mail(1))
            await run.sink.until(lambda: len(run.sink.raw) == 1)
            await run.reach("idle", after=len(run.states) - 1)
            mark = len(run.states)
            started = time.monotonic()
            await proxy.say_bye(b"Session invalidated - AccessTokenExpired")
            await run.reach("idle", after=mark)
            back = time.monotonic() - started
            print(f"back in IDLE {back:.2f} s after BYE AccessTokenExpired")
            assert back < 3.0
            assert "backoff" not in run.states[mark:]
            await asyncio.to_thread(oauth_dovecot.append, mail(2))
            await run.sink.until(lambda: len(run.sink.raw) == 2)
    finally:
        await proxy.close()
    assert len(run.sink.accepts) == 2
    assert tokens.fetches == 2  # the expired token was dropped and a new one fetched
    assert tokens.ok


@pytest.mark.slow
async def test_session_outlives_a_failed_renewal_until_its_token_expires(
    oauth_dovecot: Dovecot, token_server: TokenServer
) -> None:
    """When the token endpoint fails at renewal time, the session keeps working with the old
    token (mail still arrives) until shortly before that token expires, then backs off; once
    the endpoint answers again the inbox comes back."""
    token_server.lifetime = 30  # renewal due at 24 s; the old token is kept until 27 s
    settings = oauth_settings(oauth_dovecot, token_server)
    tokens = tokens_for(settings)
    async with running(settings, tokens=tokens) as run:
        await run.reach("idle")
        mark = len(run.states)
        token_server.refuse((503, {}))
        await _until(lambda: len(token_server.requests) >= 2, seconds=40)  # renewal refused
        await asyncio.to_thread(oauth_dovecot.append, mail(1))
        await run.sink.until(lambda: len(run.sink.raw) == 1, within=2.5)
        assert "backoff" not in run.states[mark:]  # the session outlived the failed renewal
        await run.reach("backoff", after=mark)  # shortly before the old token expires
        assert tokens.health()["cause"] == "endpoint"
        token_server.refuse(None)
        back = len(run.states)  # after both backoffs (token source and inbox) run out
        await run.sink.until(lambda: "idle" in run.states[back:], within=45)
        await asyncio.to_thread(oauth_dovecot.append, mail(2))
        await run.sink.until(lambda: len(run.sink.raw) == 2)
    assert len(run.sink.accepts) == 2
