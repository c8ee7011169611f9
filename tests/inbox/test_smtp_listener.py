"""The embedded listener off loopback: STARTTLS required before MAIL, an allow-list of client
networks refused at connect, and no plain-text listener off loopback at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest

from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import TlsAuthority, free_port


def _referral() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(attachments=[("referral.pdf", pdf, "application/pdf")])


@pytest.fixture
def listener_cert(tls_ca: TlsAuthority, tmp_path: Path) -> Path:
    """A PEM file with the listener's key and certificate (for 127.0.0.1), from the test CA."""
    path = tmp_path / "listener.pem"
    tls_ca.ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(path)
    )
    return path


def _client(daemon, tls_ca: TlsAuthority | None = None) -> aiosmtplib.SMTP:  # type: ignore[no-untyped-def]
    port = daemon.settings.inbox_endpoint.port
    context = tls_ca.client_context() if tls_ca is not None else None
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, tls_context=context)


async def test_starttls_is_required_before_mail_off_loopback(
    daemon_factory, tls_ca: TlsAuthority, listener_cert: Path
) -> None:  # type: ignore[no-untyped-def]
    """Listening on all addresses with a certificate: MAIL before STARTTLS gets 530; after
    STARTTLS (certificate verified by the client) the referral is stored."""
    daemon = await daemon_factory(
        inbox=f"smtp://0.0.0.0:{free_port()}",
        inbox_tls_cert_file=listener_cert,
        inbox_tls_key_file=listener_cert,
    )
    async with _client(daemon) as plain:
        await plain.ehlo()
        assert plain.supports_extension("starttls")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await plain.mail("teacher@school.example")
        assert refused.value.code == 530
    async with _client(daemon, tls_ca) as secure:
        await secure.starttls()
        await secure.mail("teacher@school.example")
        await secure.rcpt("prevent@lewisham.gov.uk")
        reply = await secure.data(_referral())
    assert reply.code == 250 and "Stored as" in reply.message
    assert len(daemon.journal.query("SELECT id FROM messages")) == 1


async def test_connection_from_outside_the_allow_list_is_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """With ROUTER_INBOX_ALLOW naming other networks, a client is refused at connect (554)
    and nothing is stored; with its own network listed it is served."""
    refusing = await daemon_factory(inbox_allow="10.0.0.0/8, 192.168.0.0/16")
    with pytest.raises(aiosmtplib.SMTPConnectError) as refused:
        async with _client(refusing):
            pass
    assert "554" in str(refused.value)
    allowing = await daemon_factory(inbox_allow="10.0.0.0/8 127.0.0.0/8")
    async with _client(allowing) as client:
        await client.mail("teacher@school.example")
        await client.rcpt("prevent@lewisham.gov.uk")
        assert (await client.data(_referral())).code == 250


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROUTER_STATE_DIR": "tls-in-the-way"}, "ROUTER_INBOX_TLS_CERT_FILE"),
        ({"ROUTER_INBOX_TLS_CERT_FILE": "/nonexistent/cert.pem"}, "go together"),
        (
            {
                "ROUTER_INBOX_TLS_CERT_FILE": "/nonexistent/cert.pem",
                "ROUTER_INBOX_TLS_KEY_FILE": "/nonexistent/key.pem",
            },
            "do not load",
        ),
        (
            {"ROUTER_INBOX": "smtp://127.0.0.1:2599", "ROUTER_INBOX_ALLOW": "10.0.0.0/33"},
            "ROUTER_INBOX_ALLOW",
        ),
    ],
)
def test_unsafe_listener_settings_stop_serve_at_start(
    tmp_path: Path, rules_dir: Path, env: dict[str, str], message: str
) -> None:
    """Off loopback without a certificate where none can be made, half a certificate, an
    unreadable one, or a bad network: exit 2 with one line naming the setting, nothing
    listening."""
    (tmp_path / "tls-in-the-way").mkdir()
    (tmp_path / "tls-in-the-way" / "tls").write_text("a file where the certificate folder goes")
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env={
            **os.environ,
            "ROUTER_RULES_DIR": str(rules_dir),
            "ROUTER_HTTP": "",
            "ROUTER_INBOX": f"smtp://0.0.0.0:{free_port()}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
