"""The inbox's and relay's addresses (`ROUTER_INBOX`, `ROUTER_RELAY`) and the HTTP endpoint's
`host:port`, parsed into values; errors name what is wrong and never quote the value."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel


class Endpoint(BaseModel):
    """A parsed inbox or relay address."""

    scheme: Literal["imap", "imaps", "smtp", "smtps", "maildir", "graph"]
    host: str = ""
    port: int = 0
    user: str | None = None  # for graph:, the mailbox's whole address
    folder: str = "INBOX"
    path: Path | None = None  # for maildir:

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


_DEFAULT_PORTS = {"imap": 143, "imaps": 993, "smtp": 25, "smtps": 465}
_KNOWN_SCHEMES = frozenset(
    {"ftp", "http", "https", "imap", "imaps", "pop", "pop3", "pop3s", "smtp", "smtps", "file"}
)


def parse_endpoint(value: str, allowed: tuple[str, ...]) -> Endpoint:
    """Parse `imap://user@host:port/FOLDER`, `smtp://host:port` or `maildir:PATH`.

    Raises:
        ValueError: with a message naming what is wrong; it never quotes the value, which
            may hold a password.
    """
    value = value.strip()
    if value.startswith("maildir:"):
        if "maildir" not in allowed:
            raise ValueError(f"maildir: is not allowed here (use {_schemes(allowed)})")
        path = value[len("maildir:") :]
        if not path:
            raise ValueError("maildir: needs a path, e.g. maildir:./var/outbox")
        return Endpoint(scheme="maildir", path=Path(path))
    if value.startswith("graph://") and "graph" in allowed:
        return graph_endpoint(value)
    parts = urlsplit(value)
    if parts.password is not None:
        raise ValueError(
            "a password in the URL is not accepted (it would show wherever the setting is"
            " shown); use ROUTER_*_PASSWORD or ROUTER_*_PASSWORD_FILE"
        )
    if not parts.scheme or "://" not in value:
        raise ValueError(f"not an address: it should start with {_schemes(allowed)}")
    if parts.scheme not in allowed:
        # A well-known scheme is quoted back; anything else could be a password.
        given = f", not {parts.scheme}://" if parts.scheme in _KNOWN_SCHEMES else ""
        raise ValueError(f"scheme must be one of {_schemes(allowed)}{given}")
    if not parts.hostname:
        raise ValueError("no host name after the ://")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError("the port must be a number from 1 to 65535") from exc
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        folder=folder,
    )


def graph_endpoint(value: str) -> Endpoint:
    """`graph://MAILBOX/FOLDER`: a Microsoft 365 mailbox's address, then a folder's display
    name (`Inbox` when left out, `/` between nested folders)."""
    mailbox, _, folder = value[len("graph://") :].partition("/")
    mailbox = unquote(mailbox).strip().lower()
    local, at, domain = mailbox.rpartition("@")
    if not at or not local or not domain or any(c in mailbox for c in " <>,;:"):
        raise ValueError(
            "graph:// needs the mailbox's address, e.g. graph://referrals@council.example"
        )
    return Endpoint(
        scheme="graph", host=domain, port=443, user=mailbox, folder=unquote(folder) or "Inbox"
    )


def _schemes(allowed: tuple[str, ...]) -> str:
    names = [f"{scheme}:" if scheme == "maildir" else f"{scheme}://" for scheme in allowed]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def has_port(value: str) -> bool:
    try:
        return urlsplit(value.strip()).port is not None
    except ValueError:
        return False


INBOX_SCHEMES = ("imap", "imaps", "graph", "smtp")
RELAY_SCHEMES = ("smtp", "smtps", "graph", "maildir")


def parse_bind(value: str) -> tuple[str, int] | None:
    """`host:port` of the HTTP endpoint; None when empty (turned off)."""
    if not value.strip():
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected host:port, the port a number up to 65535")
    return host or "127.0.0.1", int(port)
