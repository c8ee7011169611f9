"""The daemon over OAuth 2.0 end to end: XOAUTH2 to Dovecot and to the relay, /readyz, status."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from router.commands.status import status
from router.service.daemon import Daemon
from tests.conftest import make_settings
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import CaptureFactory, TlsAuthority, free_port
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer, entra_error

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]

MET = "preventreferrals@met.pnn.police.uk"


def _referral() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id="<oauth-1@school.example>",
    )


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _until(predicate, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await asyncio.to_thread(predicate):
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_serve_over_oauth2_end_to_end(
    tmp_path: Path,
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    smtp_capture: CaptureFactory,
    tls_ca: TlsAuthority,
    bundled_rules: Any,
) -> None:
    """With the generic provider a referral arriving in the mailbox is forwarded through a relay
    that only takes XOAUTH2; when the token endpoint later refuses the client, /readyz and
    `status` name the cause and the setting to check."""
    token_server.lifetime = 3  # renewed every ~2.4 s, so a refusal shows quickly
    relay = smtp_capture(tls="starttls")
    relay.require_xoauth2("testuser", token_server.is_valid)
    http_port = free_port()
    settings = make_settings(
        tmp_path,
        inbox=f"imaps://testuser@127.0.0.1:{oauth_dovecot.imaps_port}/INBOX",
        inbox_ca_file=oauth_dovecot.ca_file,
        inbox_auth="oauth2",
        relay=relay.url,
        relay_ca_file=tls_ca.ca_file,
        relay_auth="oauth2",
        relay_user="testuser",
        oauth_provider="generic",
        oauth_token_url=token_server.token_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        http=f"127.0.0.1:{http_port}",
        idle_seconds=30,
    )
    daemon = Daemon(settings, bundled_rules)
    await daemon.start()
    worker = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.inbox is not None and daemon.inbox.state == "idle")
        await asyncio.to_thread(oauth_dovecot.append, _referral())
        captured = await relay.wait_for_async(2, timeout=30)
        forwards = [c for c in captured if MET in c.rcpt_tos]
        assert len(forwards) == 1 and forwards[0].auth_user == "testuser" and forwards[0].tls
        code, body = await asyncio.to_thread(_readyz, http_port)
        assert code == 200 and body["checks"]["oauth"]["inbox"]["ok"] is True

        token_server.refuse(entra_error(700016, "unauthorized_client", 400))
        await _until(lambda: _readyz(http_port)[0] == 503)
        _, body = await asyncio.to_thread(_readyz, http_port)
        inbox = body["checks"]["oauth"]["inbox"]
        assert inbox["cause"] == "unknown_client"
        assert inbox["check"] == "ROUTER_OAUTH_CLIENT_ID"
        assert CLIENT_SECRET not in json.dumps(body)
        out = io.StringIO()
        status(settings, out)
        assert "inbox: generic, FAILING: unknown_client (check ROUTER_OAUTH_CLIENT_ID), as of" in (
            out.getvalue()
        )
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(worker, 10)
        await daemon.close()
