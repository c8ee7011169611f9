"""`referral-router inbox check` as an admin runs it: real Dovecot, token endpoint and relay."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.inbox.test_imap import mail
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import CaptureFactory, TlsAuthority
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]


def _env(
    tmp_path: Path, dovecot: Dovecot, token_server: TokenServer, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        ROUTER_STATE_DIR=str(tmp_path / "state"),
        ROUTER_INBOX=f"imaps://testuser@127.0.0.1:{dovecot.imaps_port}/INBOX",
        ROUTER_INBOX_CA_FILE=str(dovecot.ca_file),
        ROUTER_INBOX_AUTH="oauth2",
        ROUTER_OAUTH_PROVIDER="generic",
        ROUTER_OAUTH_TOKEN_URL=token_server.token_url,
        ROUTER_OAUTH_CLIENT_ID=CLIENT_ID,
        ROUTER_OAUTH_CLIENT_SECRET=CLIENT_SECRET,
    )
    env.update(extra)
    return env


async def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "router", "inbox", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_check_with_good_settings_reports_and_changes_nothing(
    tmp_path: Path,
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    smtp_capture: CaptureFactory,
    tls_ca: TlsAuthority,
) -> None:
    """With working settings it logs in with XOAUTH2, counts the folder, says that the 3
    messages already there would be left alone, checks the relay's STARTTLS and XOAUTH2
    without sending, exits 0, names no sender or subject, and leaves mailbox and state alone."""
    for n in (1, 2, 3):
        oauth_dovecot.append(mail(n))
    flags = oauth_dovecot.flags()
    relay = smtp_capture(tls="starttls")
    relay.require_xoauth2("testuser", token_server.is_valid)
    env = _env(
        tmp_path,
        oauth_dovecot,
        token_server,
        ROUTER_RELAY=relay.url,
        ROUTER_RELAY_CA_FILE=str(tls_ca.ca_file),
        ROUTER_RELAY_AUTH="oauth2",
        ROUTER_RELAY_USER="testuser",
    )
    result = await _run(env)
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    out = result.stdout
    assert "AUTHENTICATE XOAUTH2" in out
    assert "INBOX: 3 messages" in out
    assert "would process 0, leave 3 untouched" in out
    assert "Processed: missing" in out
    assert "connected, STARTTLS, AUTH XOAUTH2, MAIL, RCPT; nothing sent" in out
    assert "result     ok" in out
    for private in ("sender1", "Test 1", CLIENT_SECRET):
        assert private not in out + result.stderr
    assert relay.messages == [] and relay.connections == 1
    assert oauth_dovecot.flags() == flags
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"ROUTER_OAUTH_CLIENT_SECRET": "wrong"},
            "invalid_client",
        ),
        ({"ROUTER_INBOX": "imaps://someone@127.0.0.1:{port}/INBOX"}, "login refused"),
        ({"ROUTER_INBOX": "imaps://testuser@127.0.0.1:{port}/Nowhere"}, "cannot select"),
        ({"ROUTER_OAUTH_TOKEN_URL": "http://127.0.0.1:9/token"}, "cannot be reached"),
        ({"ROUTER_INBOX_AUTH": "password", "ROUTER_INBOX_PASSWORD": "wrong"}, "login refused"),
    ],
)
async def test_check_with_bad_settings_says_why(
    tmp_path: Path,
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    change: dict[str, str],
    reason: str,
) -> None:
    """A wrong secret, a user the token is not for, a missing folder or an unreachable token
    endpoint: exit 1 with the reason, never the secret."""
    env = _env(tmp_path, oauth_dovecot, token_server)
    env.update({k: v.format(port=oauth_dovecot.imaps_port) for k, v in change.items()})
    result = await _run(env)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("result     cannot run:") and reason in last, last
    assert CLIENT_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
