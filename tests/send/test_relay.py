"""Tests of the outgoing relay against real aiosmtpd servers on loopback, and of the Maildir."""

from __future__ import annotations

import socket
import stat
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from router.endpoints import parse_endpoint
from router.send.maildir import MaildirRelay
from router.send.relay import (
    PermanentDeliveryError,
    RelaySecurityError,
    SmtpRelay,
    TransientDeliveryError,
)
from router.send.relays import make_relay
from router.send.tls import TlsMode, tls_policy
from router.settings import Settings
from tests.send.conftest import RelayMaker
from tests.servers.smtp import CaptureFactory, CaptureServer, TlsAuthority, make_tls_authority

SENDER = "referrals@council.example"
TO = "prevent@force.example"
CC = "team@council.example"


def _message(body: str = "A referral.\n") -> bytes:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = TO
    message["Cc"] = CC
    message["Subject"] = "Prevent referral"
    message["Message-ID"] = "<test-1@council.example>"
    message.set_content(body)
    return message.as_bytes()


async def test_plain_loopback_delivery(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A loopback relay without STARTTLS gets the message, envelope and bytes intact."""
    server = smtp_capture()
    message = _message()
    await relay_for(server).send(message, sender=SENDER, recipients=[TO, CC])
    [captured] = await server.wait_for_async(1)
    assert captured.mail_from == SENDER
    assert captured.rcpt_tos == (TO, CC)
    assert captured.data.replace(b"\r\n", b"\n") == message.replace(b"\r\n", b"\n")
    assert captured.message["Cc"] == CC
    assert not captured.tls


async def test_eight_bit_body(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """Raw UTF-8 in the body is sent unchanged, announced as BODY=8BITMIME."""
    server = smtp_capture()
    message = _message().replace(b"A referral.", "Référence née à Zürich.".encode())
    await relay_for(server).send(message, sender=SENDER, recipients=[TO])
    [captured] = server.wait_for(1)
    assert "Référence née à Zürich.".encode() in captured.data
    assert captured.mail_options == ("BODY=8BITMIME",)


async def test_starttls_verified(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """STARTTLS is used when offered, with the trustme certificate verified."""
    server = smtp_capture(tls="starttls", require_starttls=True)
    relay = relay_for(server)
    assert relay.describe() == f"smtp://127.0.0.1:{server.port} (STARTTLS when offered)"
    await relay.send(_message(), sender=SENDER, recipients=[TO])
    [captured] = server.wait_for(1)
    assert captured.tls


async def test_smtps(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """smtps:// speaks TLS from the first byte."""
    server = smtp_capture(tls="smtps")
    await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    [captured] = server.wait_for(1)
    assert captured.tls


async def test_auth_over_starttls(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """The relay logs in after STARTTLS; describe() shows the user but never the password."""
    server = smtp_capture(tls="starttls")
    server.require_auth("relayuser", "s3cret-pw")
    relay = relay_for(server, user="relayuser", password="s3cret-pw")
    assert "s3cret-pw" not in relay.describe()
    await relay.send(_message(), sender=SENDER, recipients=[TO])
    [captured] = server.wait_for(1)
    assert captured.auth_user == "relayuser"
    assert captured.tls


async def test_wrong_password_is_security_error(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """Refused credentials are an operator problem: RelaySecurityError, so mail is kept."""
    server = smtp_capture(tls="starttls")
    server.require_auth("relayuser", "right")
    with pytest.raises(RelaySecurityError) as caught:
        await relay_for(server, user="relayuser", password="wrong").send(
            _message(), sender=SENDER, recipients=[TO]
        )
    assert caught.value.code == 535
    assert "wrong" not in str(caught.value)
    assert server.messages == []


async def test_missing_auth_is_security_error(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """A relay that wants AUTH when no user is configured answers 530: a security error."""
    server = smtp_capture(tls="starttls")
    server.require_auth("relayuser", "right")
    with pytest.raises(RelaySecurityError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    assert caught.value.code == 530


async def test_untrusted_certificate_refused(
    smtp_capture: CaptureFactory, relay_for: RelayMaker, tmp_path: Path
) -> None:
    """A certificate from a CA we do not trust stops the send before any mail is sent."""
    stranger = make_tls_authority(tmp_path / "other-ca")
    for tls in ("starttls", "smtps"):
        server = smtp_capture(tls=tls, server_context=stranger.server_context)
        with pytest.raises(RelaySecurityError, match="not trusted"):
            await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
        assert server.messages == []


async def test_451_is_transient(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A 451 at DATA is transient; the next attempt goes through."""
    server = smtp_capture()
    server.fail_with(451, "4.3.0 try later", at="DATA", times=1)
    relay = relay_for(server)
    with pytest.raises(TransientDeliveryError) as caught:
        await relay.send(_message(), sender=SENDER, recipients=[TO])
    assert caught.value.code == 451
    assert "try later" in caught.value.detail
    await relay.send(_message(), sender=SENDER, recipients=[TO])
    assert len(server.wait_for(1)) == 1


async def test_550_is_permanent(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A 550 at DATA is permanent."""
    server = smtp_capture()
    server.fail_with(550, "5.7.1 rejected", at="DATA")
    with pytest.raises(PermanentDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    assert caught.value.code == 550


async def test_421_at_connect(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A 421 greeting (service not available) is transient."""
    server = smtp_capture()
    server.fail_with(421, "4.3.2 shutting down", at="connect", times=1)
    with pytest.raises(TransientDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    assert caught.value.code == 421


async def test_dropped_mid_data(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A connection closed after the data but before the reply is transient."""
    server = smtp_capture()
    server.drop_connection_mid_data()
    with pytest.raises(TransientDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    assert caught.value.code is None
    assert server.messages == []


async def test_stall_times_out(smtp_capture: CaptureFactory, relay_for: RelayMaker) -> None:
    """A server that stalls at DATA fails the send as transient within the client timeout."""
    server = smtp_capture()
    server.stall(30, at="DATA")
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        await relay_for(server, timeout=0.5).send(_message(), sender=SENDER, recipients=[TO])
    assert time.monotonic() - started < 10  # the stall is 30 s; a busy machine adds seconds


async def test_connection_refused(relay_for: RelayMaker) -> None:
    """Nothing listening on the port is transient."""
    server = CaptureServer()  # configured, never started: its port is closed
    with pytest.raises(TransientDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO])
    assert not isinstance(caught.value, RelaySecurityError)


async def test_partial_recipient_refusal(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """One refused recipient stops the whole send (no DATA) and names the refused address."""
    server = smtp_capture()
    server.fail_with(550, "5.1.1 no such user", at="RCPT", recipients={CC})
    with pytest.raises(PermanentDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO, CC])
    assert caught.value.refused == (CC,)
    assert CC in caught.value.detail
    assert server.messages == []


async def test_transient_recipient_refusal(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """A 450 for a recipient is transient and nothing is sent to the others."""
    server = smtp_capture()
    server.fail_with(450, "4.2.1 mailbox busy", at="RCPT", recipients={TO}, times=1)
    with pytest.raises(TransientDeliveryError) as caught:
        await relay_for(server).send(_message(), sender=SENDER, recipients=[TO, CC])
    assert not isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.refused == (TO,)
    assert server.messages == []


def test_tls_policy() -> None:
    """Remote smtp:// requires STARTTLS unless allow_insecure; loopback uses it when offered."""
    remote = parse_endpoint("smtp://relay.example:587", ("smtp",))
    loopback = parse_endpoint("smtp://127.0.0.1:25", ("smtp",))
    implicit = parse_endpoint("smtps://relay.example", ("smtps",))
    assert tls_policy(remote, False).mode is TlsMode.REQUIRED
    assert tls_policy(remote, True).mode is TlsMode.OPPORTUNISTIC
    assert not tls_policy(remote, True).plain_auth_allowed
    assert tls_policy(loopback, False).mode is TlsMode.OPPORTUNISTIC
    assert tls_policy(loopback, False).plain_auth_allowed
    assert tls_policy(implicit, False).mode is TlsMode.IMPLICIT


async def test_maildir_writes_atomically(tmp_path: Path) -> None:
    """The message lands in new/ byte for byte, nothing stays in tmp/, and modes are private."""
    outbox = tmp_path / "outbox"
    relay = MaildirRelay(outbox)
    message = _message()
    await relay.send(message, sender=SENDER, recipients=[TO, CC])
    await relay.send(message, sender=SENDER, recipients=[TO, CC])
    files = sorted((outbox / "new").iterdir())
    assert len(files) == 2
    assert files[0].name != files[1].name
    assert files[0].read_bytes() == message
    assert files[0].name.endswith(f",S={len(message)}")
    assert list((outbox / "tmp").iterdir()) == []
    for sub in ("cur", "new", "tmp"):
        assert stat.S_IMODE((outbox / sub).stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert relay.describe() == f"maildir:{outbox}"


def test_make_relay_from_settings(tmp_path: Path, tls_ca: TlsAuthority) -> None:
    """make_relay picks Maildir or SMTP from ROUTER_RELAY and reads the password file."""
    maildir = make_relay(Settings(relay=f"maildir:{tmp_path / 'out'}"))
    assert isinstance(maildir, MaildirRelay)
    password_file = tmp_path / "pw"
    password_file.write_text("from-file\n")
    smtp = make_relay(
        Settings(
            relay="smtp://relay.example:587",
            relay_user="bob",
            relay_password_file=password_file,
            relay_ca_file=tls_ca.ca_file,
        )
    )
    assert isinstance(smtp, SmtpRelay)
    assert smtp.describe() == "smtp://bob@relay.example:587 (STARTTLS required)"


def test_bad_ca_file_fails_at_start(tmp_path: Path) -> None:
    """An unreadable relay CA file is a clear ValueError at start-up, not at the first send."""
    with pytest.raises(ValueError, match="CA file"):
        make_relay(Settings(relay="smtps://relay.example", relay_ca_file=tmp_path / "nope.pem"))


async def test_remote_relay_without_starttls_refused() -> None:
    """A relay named by a non-loopback address that offers no STARTTLS gets nothing in plain text.

    The capture server listens on 127.0.0.1, which is loopback; this test reaches it through
    the host's own non-loopback address when it has one, and skips otherwise.
    """
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    server = CaptureServer(host=address).start()
    try:
        relay = SmtpRelay(
            parse_endpoint(server.url, ("smtp",)),
            user=None,
            password=None,
            ca_file=None,
            allow_insecure=False,
            timeout=5,
        )
        with pytest.raises(RelaySecurityError, match="STARTTLS"):
            await relay.send(_message(), sender=SENDER, recipients=[TO])
        assert server.messages == []
    finally:
        server.stop()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address
