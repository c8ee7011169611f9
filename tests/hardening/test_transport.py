"""Safe transport: credentials only from settings or files, never shown; TLS verified off
loopback; an internationalised address never stops delivery."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.endpoints import parse_endpoint
from router.send.relay import RelaySecurityError, SmtpRelay
from router.settings import Settings
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import CaptureServer, TlsAuthority

PASSWORD = "Pw-3b9e!relay"
FORM = fillable_pdf(labelled(complete_referral()))
MESSAGE = b"From: a@router.example\r\nTo: b@force.example\r\nSubject: x\r\n\r\nbody\r\n"


def _secret_forms(password: str, user: str) -> list[str]:
    """The password as it could leak: plain, and inside an AUTH PLAIN or LOGIN exchange."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    return [password, plain, login]


def test_password_file_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROUTER_RELAY_PASSWORD_FILE and ROUTER_INBOX_PASSWORD_FILE are read, trimmed, and
    never shown by the settings object."""
    relay_file, inbox_file = tmp_path / "relay.pw", tmp_path / "inbox.pw"
    relay_file.write_text(PASSWORD + "\n")
    inbox_file.write_text("inbox-" + PASSWORD)
    monkeypatch.setenv("ROUTER_RELAY_PASSWORD_FILE", str(relay_file))
    monkeypatch.setenv("ROUTER_INBOX_PASSWORD_FILE", str(inbox_file))
    settings = Settings()
    assert settings.secret("relay") == PASSWORD
    assert settings.secret("inbox") == "inbox-" + PASSWORD
    monkeypatch.setenv("ROUTER_RELAY_PASSWORD", "direct-" + PASSWORD)
    direct = Settings()
    assert direct.secret("relay") == "direct-" + PASSWORD  # the variable wins over the file
    assert PASSWORD not in repr(direct) and PASSWORD not in str(direct.model_dump())


@pytest.mark.parametrize("name", ["relay", "inbox"])
def test_password_in_url_is_refused_without_echo(name: str) -> None:
    """A password written into ROUTER_RELAY or ROUTER_INBOX is refused, and not echoed."""
    scheme = "smtp" if name == "relay" else "imap"
    with pytest.raises(ValidationError) as refused:
        Settings(**{name: f"{scheme}://bob:{PASSWORD}@mail.example:587"})  # type: ignore[arg-type]
    assert PASSWORD not in str(refused.value)
    assert "password in the URL" in str(refused.value)


async def test_relay_password_never_logged(
    daemon_factory, smtp_capture, tls_ca: TlsAuthority, tmp_path: Path, log_capture
) -> None:  # type: ignore[no-untyped-def]
    """A daemon relaying with AUTH at debug level logs neither the password nor its AUTH
    encodings, and describe() shows only the user."""
    logs = log_capture("debug")
    relay = smtp_capture(tls="starttls")
    relay.require_auth("relayuser", PASSWORD)
    password_file = tmp_path / "relay.pw"
    password_file.write_text(PASSWORD)
    daemon = await daemon_factory(
        relay=relay.url,
        relay_user="relayuser",
        relay_password_file=password_file,
        relay_ca_file=tls_ca.ca_file,
    )
    assert daemon.relay.describe().startswith("smtp://relayuser@127.0.0.1:")
    await submit(daemon, build_email(attachments=[("r.pdf", FORM, "application/pdf")]))
    await daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    assert {c.auth_user for c in captured} == {"relayuser"}
    assert "relay.sent" in logs.getvalue()  # debug lines were written
    for secret in _secret_forms(PASSWORD, "relayuser"):
        assert secret not in logs.getvalue()
        assert secret not in daemon.relay.describe()


async def test_refused_password_is_not_logged(
    smtp_capture, tls_ca: TlsAuthority, log_capture
) -> None:  # type: ignore[no-untyped-def]
    """A wrong password is a security error whose message and log lines omit it."""
    logs = log_capture("debug")
    server = smtp_capture(tls="starttls")
    server.require_auth("relayuser", "the-right-one")
    relay = SmtpRelay(
        parse_endpoint(server.url, ("smtp",)),
        user="relayuser",
        password=PASSWORD,
        ca_file=tls_ca.ca_file,
        allow_insecure=False,
        timeout=5,
    )
    with pytest.raises(RelaySecurityError) as refused:
        await relay.send(MESSAGE, sender="a@router.example", recipients=["b@force.example"])
    assert "relay.failed" in logs.getvalue()
    for secret in _secret_forms(PASSWORD, "relayuser"):
        assert secret not in logs.getvalue() and secret not in str(refused.value)


def _non_loopback_address() -> str | None:
    """This host's own non-loopback IPv4 address, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: UDP connect sends nothing
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def remote_server(tls_ca: TlsAuthority):  # type: ignore[no-untyped-def]
    """Start capture servers on this host's non-loopback address (skip when there is none)."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    servers: list[CaptureServer] = []

    def start(tls: str = "none") -> CaptureServer:
        context = tls_ca.server_context if tls != "none" else None
        server = CaptureServer(tls=tls, server_context=context, host=address)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def _remote_relay(server: CaptureServer, tls_ca: TlsAuthority, **options: object) -> SmtpRelay:
    values: dict[str, object] = {
        "user": None,
        "password": None,
        "ca_file": tls_ca.ca_file,
        "allow_insecure": False,
        "timeout": 5,
    }
    values.update(options)
    return SmtpRelay(parse_endpoint(server.url, ("smtp", "smtps")), **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
async def test_certificate_name_is_verified(remote_server, tls_ca: TlsAuthority, tls: str) -> None:  # type: ignore[no-untyped-def]
    """A trusted CA is not enough: a certificate for another name (here localhost and
    127.0.0.1, reached by another address) is refused, even with allow_insecure."""
    server = remote_server(tls)
    for allow_insecure in (False, True):
        relay = _remote_relay(server, tls_ca, allow_insecure=allow_insecure)
        with pytest.raises(RelaySecurityError, match="not trusted"):
            await relay.send(MESSAGE, sender="a@router.example", recipients=["b@force.example"])
    assert server.messages == []


async def test_password_never_sent_in_clear_off_loopback(
    remote_server, tls_ca: TlsAuthority
) -> None:  # type: ignore[no-untyped-def]
    """With allow_insecure, plain SMTP to a remote relay may carry mail, never the password."""
    server = remote_server()
    server.require_auth("relayuser", PASSWORD, require_tls=False)
    relay = _remote_relay(server, tls_ca, allow_insecure=True, user="relayuser", password=PASSWORD)
    with pytest.raises(RelaySecurityError, match="without TLS"):
        await relay.send(MESSAGE, sender="a@router.example", recipients=["b@force.example"])
    assert server.messages == []


class _Utf8CaptureServer(CaptureServer):
    """A capture server that offers SMTPUTF8 (RFC 6531)."""

    def _new_session(self):  # type: ignore[no-untyped-def]
        session = super()._new_session()
        session.enable_SMTPUTF8 = True
        return session


@pytest.mark.parametrize("smtputf8", [False, True])
async def test_internationalised_from_never_stops_delivery(
    daemon_factory, tmp_path: Path, smtputf8: bool
) -> None:  # type: ignore[no-untyped-def]
    """A referral from a non-ASCII address is forwarded; its acknowledgment goes out with
    SMTPUTF8 when the relay offers it, else fails alone; the next referral is unaffected."""
    server = (_Utf8CaptureServer if smtputf8 else CaptureServer)().start()
    try:
        daemon = await daemon_factory(relay=server.url)
        form = [("r.pdf", FORM, "application/pdf")]
        await submit(
            daemon, build_email(sender=None, attachments=form, headers={"From": "josé@exämple.org"})
        )
        await daemon.run_once()
        await submit(daemon, build_email(attachments=form))
        await daemon.run_once()
        rows = daemon.journal.query("SELECT kind, state FROM outbox ORDER BY created_at, id")
        states = [(row["kind"], row["state"]) for row in rows]
        ack_state = "sent" if smtputf8 else "failed"
        assert states == [
            ("forward", "sent"),
            ("ack", ack_state),
            ("forward", "sent"),
            ("ack", "sent"),
        ]
        if smtputf8:
            ack = next(c for c in server.messages if "josé@exämple.org" in c.rcpt_tos)
            assert "SMTPUTF8" in ack.mail_options
            assert str(ack.message["To"]) == "josé@exämple.org"
    finally:
        server.stop()
