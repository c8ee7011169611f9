"""Settings from ROUTER_* environment variables (SPEC section 7), validated at start-up."""

from __future__ import annotations

import contextlib
import re
import socket
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from router.endpoints import (
    INBOX_SCHEMES,
    RELAY_SCHEMES,
    Endpoint,
    graph_endpoint,
    has_port,
    parse_bind,
    parse_endpoint,
)
from router.settings_console import ConsoleSettings

# A host name for EHLO: dot-separated labels, or an address literal such as [192.0.2.1].
_HELO_NAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+|\[[0-9A-Fa-f:.]+\]")


class Settings(ConsoleSettings, BaseSettings):
    """Every setting of the router. Passed in to what needs it, never imported as a global.

    The console's (`ROUTER_CONSOLE*`) are inherited from `router.settings_console`.
    """

    # Errors never echo the values given: they may hold a password.
    model_config = SettingsConfigDict(
        env_prefix="ROUTER_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    rules_dir: Path = Path("./rules")
    state_dir: Path = Path("./var")
    inbox: str = "smtp://127.0.0.1:2525"
    inbox_password: SecretStr | None = None
    inbox_password_file: Path | None = None
    # Empty: a Maildir in the state directory (`relay_endpoint`), SPEC section 7.
    relay: str = ""
    relay_user: str | None = None
    relay_password: SecretStr | None = None
    relay_password_file: Path | None = None
    # The name the router gives its relay in EHLO; empty: the host's fully-qualified name
    # (`ehlo_name`). Relays that reject a name without a dot (Postfix's
    # reject_non_fqdn_helo_hostname) refuse `localhost`.
    helo_name: str = ""
    from_address: str = "referrals@localhost"
    review_address: str = "review@localhost"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    http: str = "127.0.0.1:9181"
    inbox_ca_file: Path | None = None
    relay_ca_file: Path | None = None
    # Allow plain-text IMAP / unverified SMTP to a host that is not on loopback.
    allow_insecure: bool = False
    # IMAP folders the inbox copy is moved to once settled.
    processed_folder: str = "Processed"
    failed_folder: str = "Failed"
    idle_seconds: int = Field(default=300, ge=5, le=1740)
    imap_batch: int = Field(default=50, ge=1)
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(default=20, ge=1)
    parse_timeout_seconds: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    retention_days: int = Field(default=30, ge=0)
    # Comma-separated authserv-ids of the council's own mail servers: only their
    # Authentication-Results headers are believed (router.core.mail.auth). Empty: the topmost.
    trusted_authserv_ids: str = ""
    shutdown_seconds: float = Field(default=8.0, gt=0)

    # OAuth 2.0 (SPEC section 7, "OAuth 2.0"): how the inbox and the relay authenticate.
    inbox_auth: Literal["password", "oauth2"] = "password"
    # None: `password` when ROUTER_RELAY_USER is set, else `none` (see `relay_auth_method`).
    relay_auth: Literal["none", "password", "oauth2"] | None = None
    oauth_provider: Literal["microsoft", "google", "generic"] = "microsoft"
    oauth_tenant: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr | None = None
    oauth_client_secret_file: Path | None = None
    oauth_certificate_file: Path | None = None
    oauth_token_url: str = ""
    oauth_scope: str = ""
    # What to do with mail already in the IMAP folder at the first connection:
    # `new`, `all` or a date YYYY-MM-DD (SPEC section 7, "First connection to a mailbox").
    imap_start: str = "new"
    # The embedded listener off loopback: STARTTLS certificate and client networks (CIDRs).
    inbox_tls_cert_file: Path | None = None
    inbox_tls_key_file: Path | None = None
    inbox_allow: str = ""
    # Microsoft Graph (graph:// inbox or relay): its base URL and how often the inbox polls.
    graph_url: str = "https://graph.microsoft.com/v1.0"
    graph_poll_seconds: float = Field(default=10.0, ge=0.2, le=3600)
    # Empty: SQLite in state_dir; a libpq URL (`postgresql://user@host:port/db`, several
    # hosts, `host=` in the query...) for a shared journal. Never with a password in it.
    journal: str = ""
    journal_password: SecretStr | None = None
    journal_password_file: Path | None = None
    # This router's name among several sharing one journal (empty: host name and PID).
    node_name: str = ""
    # Comma-separated addresses mailed the previous month's statistics report on the first
    # day of each month (router.service.monthly); empty: no report mailed.
    report_to: str = ""

    @model_validator(mode="before")
    @classmethod
    def _graph_from(cls, data: Any) -> Any:
        # SPEC section 7: with a graph:// relay, the router's own address defaults to the mailbox.
        if isinstance(data, dict) and not data.get("from_address"):
            relay = str(data.get("relay") or "").strip()
            if relay.startswith("graph://"):
                with contextlib.suppress(ValueError):  # the relay's validator says what is wrong
                    data = {**data, "from_address": graph_endpoint(relay).user}
        return data

    @field_validator("graph_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        url = urlsplit(value.strip())
        local = url.hostname is not None and Endpoint(scheme="smtp", host=url.hostname).is_loopback
        if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and local)):
            raise ValueError("must be an https:// URL (http only on loopback)")
        return value.strip().rstrip("/")

    @field_validator("report_to")
    @classmethod
    def _addresses(cls, value: str) -> str:
        addresses = [part.strip().lower() for part in value.split(",") if part.strip()]
        for address in addresses:
            if "@" not in address or any(c in address for c in " <>;\r\n"):
                raise ValueError("not a comma-separated list of bare email addresses")
        return ",".join(addresses)

    @property
    def report_recipients(self) -> tuple[str, ...]:
        """`report_to` as a list of addresses (empty: no monthly report)."""
        return tuple(part for part in self.report_to.split(",") if part)

    @field_validator("helo_name")
    @classmethod
    def _helo(cls, value: str) -> str:
        name = value.strip()
        if name and not _HELO_NAME.fullmatch(name):
            raise ValueError("not a host name (letters, digits, '-' and '.') or an [address]")
        return name

    @property
    def ehlo_name(self) -> str:
        """The name given in EHLO: `ROUTER_HELO_NAME`, else the host's fully-qualified name."""
        return self.helo_name or socket.getfqdn()

    @field_validator("from_address", "review_address")
    @classmethod
    def _address(cls, value: str) -> str:
        address = value.strip().lower()
        if "@" not in address or any(c in address for c in " <>,;\r\n"):
            raise ValueError("not a bare email address (no name, no <>, one address)")
        return address

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("imap_start")
    @classmethod
    def _imap_start(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("new", "all"):
            return value
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                date.fromisoformat(value)
                return value
        except ValueError:
            pass
        raise ValueError("ROUTER_IMAP_START must be new, all or a date YYYY-MM-DD")

    @model_validator(mode="after")
    def _oauth(self) -> Settings:
        # SPEC section 7, "OAuth 2.0": what each provider needs, checked at start-up.
        if self.oauth_token_url:
            url = urlsplit(self.oauth_token_url)
            local = (
                url.hostname is not None and Endpoint(scheme="smtp", host=url.hostname).is_loopback
            )
            if url.scheme != "https" and not (url.scheme == "http" and local):
                raise ValueError(
                    "ROUTER_OAUTH_TOKEN_URL must be an https:// URL (http only on loopback)"
                )
        if "oauth2" not in (self.inbox_auth_method, self.relay_auth_method):
            return self
        secret = self.oauth_client_secret is not None or self.oauth_client_secret_file is not None
        needs = {
            "generic": [("ROUTER_OAUTH_TOKEN_URL", bool(self.oauth_token_url))],
            "microsoft": [("ROUTER_OAUTH_TENANT", bool(self.oauth_tenant or self.oauth_token_url))],
            "google": [("ROUTER_OAUTH_CERTIFICATE_FILE", self.oauth_certificate_file is not None)],
        }[self.oauth_provider]
        if self.oauth_provider != "google":
            needs.append(("ROUTER_OAUTH_CLIENT_ID", bool(self.oauth_client_id)))
            credential = secret or (
                self.oauth_provider == "microsoft" and self.oauth_certificate_file is not None
            )
            needs.append(("ROUTER_OAUTH_CLIENT_SECRET", credential))
        if self.relay_auth_method == "oauth2" and self.relay_endpoint.scheme != "graph":
            user = self.relay_user or self.relay_endpoint.user
            needs.append(("ROUTER_RELAY_USER", bool(user)))
        missing = [name for name, present in needs if not present]
        if missing:
            raise ValueError(
                f"OAuth 2.0 with ROUTER_OAUTH_PROVIDER={self.oauth_provider} needs"
                f" {', '.join(missing)}"
            )
        return self

    @field_validator("journal")
    @classmethod
    def _journal(cls, value: str) -> str:
        if value.strip():
            from router.journal.conninfo import parse_journal_url  # psycopg only when set

            parse_journal_url(value)
        return value

    @field_validator("inbox")
    @classmethod
    def _inbox(cls, value: str) -> str:
        endpoint = parse_endpoint(value, INBOX_SCHEMES)
        if endpoint.scheme == "smtp" and not has_port(value):
            # Without it the listener would take port 25, which is rarely what was meant.
            raise ValueError("no port: say which port the embedded listener takes")
        return value

    @field_validator("relay")
    @classmethod
    def _relay(cls, value: str) -> str:
        if value.strip():
            endpoint = parse_endpoint(value, RELAY_SCHEMES)
            if endpoint.scheme == "smtp" and not has_port(value):
                raise ValueError("no port: 587 for submission with STARTTLS, 25 for a local relay")
        return value

    @field_validator("http")
    @classmethod
    def _http(cls, value: str) -> str:
        parse_bind(value)
        return value

    @property
    def inbox_endpoint(self) -> Endpoint:
        return parse_endpoint(self.inbox, INBOX_SCHEMES)

    @property
    def relay_endpoint(self) -> Endpoint:
        relay = self.relay.strip() or f"maildir:{self.state_dir / 'outbox'}"
        return parse_endpoint(relay, RELAY_SCHEMES)

    @property
    def inbox_auth_method(self) -> Literal["password", "oauth2"]:
        """`inbox_auth`, except that a graph:// inbox always uses OAuth 2.0."""
        return "oauth2" if self.inbox_endpoint.scheme == "graph" else self.inbox_auth

    @property
    def graph_scope(self) -> str:
        """The scope a graph:// inbox or relay asks for: `<origin of ROUTER_GRAPH_URL>/.default`."""
        url = urlsplit(self.graph_url)
        return f"{url.scheme}://{url.netloc}/.default"

    @property
    def relay_auth_method(self) -> Literal["none", "password", "oauth2"]:
        """`relay_auth`, or its default: `password` when a relay user is set, else `none`.
        A graph:// relay always uses OAuth 2.0."""
        if self.relay_endpoint.scheme == "graph":
            return "oauth2"
        if self.relay_auth is not None:
            return self.relay_auth
        return "password" if self.relay_user else "none"

    @property
    def authserv_ids(self) -> tuple[str, ...]:
        """`trusted_authserv_ids` as lower-case ids, blanks dropped."""
        ids = (part.strip().lower() for part in self.trusted_authserv_ids.split(","))
        return tuple(part for part in ids if part)

    @property
    def http_bind(self) -> tuple[str, int] | None:
        return parse_bind(self.http)

    def secret(self, name: Literal["inbox", "relay"]) -> str | None:
        """The password for the inbox or the relay, from the variable or its `_FILE` variant."""
        value = self.inbox_password if name == "inbox" else self.relay_password
        path = self.inbox_password_file if name == "inbox" else self.relay_password_file
        if value is not None:
            return value.get_secret_value()
        if path is not None:
            return path.read_text(encoding="utf-8").strip()
        return None
