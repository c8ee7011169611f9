"""How a connection to the outgoing SMTP relay is secured: the policy for an endpoint, and
the verifying client context."""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass
from pathlib import Path

from router.endpoints import Endpoint


class TlsMode(enum.Enum):
    """How an SMTP relay connection is secured."""

    IMPLICIT = "TLS"  # smtps://: TLS from the first byte
    REQUIRED = "STARTTLS required"  # smtp:// to a remote host
    OPPORTUNISTIC = "STARTTLS when offered"  # smtp:// on loopback, or allow_insecure


@dataclass(frozen=True)
class TlsPolicy:
    """The TLS rules for one relay endpoint.

    Attributes:
        mode: how the connection is secured.
        plain_auth_allowed: whether the password may be sent without TLS (loopback only).
    """

    mode: TlsMode
    plain_auth_allowed: bool


def tls_policy(endpoint: Endpoint, allow_insecure: bool) -> TlsPolicy:
    """Decide how to secure a connection to `endpoint`.

    A relay that is not on loopback must offer STARTTLS unless the operator set
    `allow_insecure`. When TLS is used, the certificate is always verified; the
    password is only ever sent in plain text to a loopback relay.
    """
    if endpoint.scheme == "smtps":
        mode = TlsMode.IMPLICIT
    elif endpoint.is_loopback or allow_insecure:
        mode = TlsMode.OPPORTUNISTIC
    else:
        mode = TlsMode.REQUIRED
    return TlsPolicy(mode=mode, plain_auth_allowed=endpoint.is_loopback)


def client_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: `ca_file` alone when given, else the system CAs.

    Raises:
        ValueError: the CA file cannot be read or holds no certificate.
    """
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"relay CA file {ca_file}: {exc}") from exc
