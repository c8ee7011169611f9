"""Fixtures for delivery tests: real SMTP capture servers with trustme TLS, relays aimed at them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from router.endpoints import parse_endpoint
from router.send.relay import SmtpRelay
from tests.servers.smtp import CaptureServer, TlsAuthority, smtp_capture, tls_ca

__all__ = ["RelayMaker", "relay_for", "smtp_capture", "tls_ca"]

RelayMaker = Callable[..., SmtpRelay]


@pytest.fixture
def relay_for(tls_ca: TlsAuthority) -> RelayMaker:
    """Build an SmtpRelay aimed at a capture server, trusting the session CA by default."""

    def make(server: CaptureServer, **options: object) -> SmtpRelay:
        defaults: dict[str, object] = {
            "user": None,
            "password": None,
            "ca_file": tls_ca.ca_file,
            "allow_insecure": False,
            "timeout": 5,
        }
        defaults.update(options)
        return SmtpRelay(parse_endpoint(server.url, ("smtp", "smtps")), **defaults)  # type: ignore[arg-type]

    return make
