"""The daemon's token sources (inbox, relay), their health, and the certificate's expiry watch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

from router.oauth.cache import CachedTokenSource
from router.oauth.factory import make_token_source
from router.settings import Settings

if TYPE_CHECKING:
    from router.journal.protocol import Journal
    from router.oauth.microsoft import CertificateCredential

log = structlog.get_logger(__name__)

CERTIFICATE_WARN_DAYS = 30
CERTIFICATE_CHECK_SECONDS = 86400.0  # the warning is repeated daily
META_KEY = "oauth_state"


class OAuthSources:
    """The token sources `ROUTER_INBOX_AUTH` / `ROUTER_RELAY_AUTH` ask for (none for passwords).

    Args:
        settings: the router's settings.
        on_change: called whenever a source's health changes.
        verify: True for the system CAs, or a CA bundle for a private token endpoint.

    Raises:
        ValueError: a credential file cannot be read or used (the message names the setting).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_change: Callable[[], None] = lambda: None,
        verify: bool | str = True,
    ) -> None:
        self.inbox: CachedTokenSource | None = None
        self.relay: CachedTokenSource | None = None
        self.certificate: CertificateCredential | None = None
        if settings.inbox_auth_method == "oauth2":
            endpoint = settings.inbox_endpoint
            self.inbox = make_token_source(
                settings,
                endpoint.user or "",
                role="inbox",
                verify=verify,
                on_change=on_change,
                scope=settings.graph_scope if endpoint.scheme == "graph" else None,
            )
        if settings.relay_auth_method == "oauth2":
            relay = settings.relay_endpoint
            self.relay = make_token_source(
                settings,
                settings.relay_user or relay.user or "",
                role="relay",
                verify=verify,
                on_change=on_change,
                scope=settings.graph_scope if relay.scheme == "graph" else None,
            )
        if (self.inbox or self.relay) and settings.oauth_provider == "microsoft":
            from router.oauth.microsoft import load_certificate

            path = settings.oauth_certificate_file
            self.certificate = load_certificate(path) if path is not None else None
        self._recording: asyncio.Task[None] | None = None
        self._record_again = False

    @property
    def sources(self) -> dict[str, CachedTokenSource]:
        """The sources in use, by role."""
        found = {"inbox": self.inbox, "relay": self.relay}
        return {role: source for role, source in found.items() if source is not None}

    def health(self) -> dict[str, Any]:
        """Each source's health by role (what /readyz and `status` show)."""
        state: dict[str, Any] = {role: s.health() for role, s in self.sources.items()}
        if self.certificate is not None:
            state["certificate_expires_in_days"] = round(self.certificate_seconds() / 86400, 1)
        return state

    @property
    def ok(self) -> bool:
        """Whether every source has a token the servers accept (or has not been tried yet)."""
        return all(source.ok for source in self.sources.values())

    def certificate_seconds(self) -> float:
        """Seconds until the certificate credential expires (negative once it has)."""
        assert self.certificate is not None
        return (self.certificate.not_after - datetime.now(UTC)).total_seconds()

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Export the certificate's remaining life on /metrics."""
        if self.certificate is None:
            return
        gauge = Gauge(
            "router_oauth_certificate_expiry_seconds",
            "Seconds until the OAuth certificate credential expires",
            registry=registry,
        )
        gauge.set_function(self.certificate_seconds)

    def check_certificate(self) -> None:
        """Warn when the certificate credential expires within 30 days (or has expired)."""
        if self.certificate is None:
            return
        days = self.certificate_seconds() / 86400
        if days < CERTIFICATE_WARN_DAYS:
            log.warning(
                "oauth.certificate_expiring",
                days_left=round(days, 1),
                not_after=f"{self.certificate.not_after:%Y-%m-%d}",
                thumbprint=self.certificate.thumbprint_sha1,
                check="ROUTER_OAUTH_CERTIFICATE_FILE (upload a new certificate to the app)",
            )

    async def watch_certificate(self, stop: asyncio.Event) -> None:
        """Check the certificate now and then daily until `stop` is set."""
        while not stop.is_set():
            self.check_certificate()
            try:
                await asyncio.wait_for(stop.wait(), CERTIFICATE_CHECK_SECONDS)
            except TimeoutError:
                continue

    def record(self, journal: Journal) -> None:
        """Keep the current health in the journal, where `referral-router status` reads it."""
        value = json.dumps({"at": round(time.time(), 1), **self.health()})
        journal.set_meta(META_KEY, value)

    def record_soon(self, journal: Journal) -> None:
        """`record`, best effort, in a worker thread: a token is handed out at once, whatever
        the journal is doing (locked by `status`, a database blip). Changes that come while a
        write is under way are written once it ends; a failed write is logged, not raised."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the daemon's loop (a command): write it here
            self._record_quietly(journal)
            return
        if self._recording is not None and not self._recording.done():
            self._record_again = True
            return
        self._recording = loop.create_task(self._record_in_thread(journal), name="oauth-health")

    async def recorded(self) -> None:
        """Wait for a write `record_soon` started (the daemon, before it closes the journal)."""
        if self._recording is not None:
            await self._recording

    async def _record_in_thread(self, journal: Journal) -> None:
        while True:
            self._record_again = False
            await asyncio.to_thread(self._record_quietly, journal)
            if not self._record_again:
                return

    def _record_quietly(self, journal: Journal) -> None:
        try:
            self.record(journal)
        except Exception as exc:  # best effort: /readyz shows the health from memory anyway
            log.warning("oauth.health_not_recorded", error=type(exc).__name__)


def recorded_health(journal: Journal) -> dict[str, Any] | None:
    """The health the daemon last recorded, or None (no OAuth, or never recorded)."""
    recorded = journal.meta(META_KEY)
    if recorded is None:
        return None
    value = json.loads(recorded)
    return value if isinstance(value, dict) else None


def format_health(health: dict[str, Any]) -> list[str]:
    """`status` lines for a recorded health: one per token source, and the certificate's life."""
    lines = []
    at = health.get("at")
    when = f", as of {time.time() - at:.0f} s ago" if isinstance(at, int | float) else ""
    for role in ("inbox", "relay"):
        state = health.get(role)
        if not isinstance(state, dict):
            continue
        if state.get("ok"):
            verdict = "ok"
        else:
            verdict = f"FAILING: {state.get('cause')} (check {state.get('check')})"
        lines.append(f"oauth       {role}: {state.get('provider')}, {verdict}{when}")
    days = health.get("certificate_expires_in_days")
    if days is not None:
        lines.append(f"oauth       certificate expires in {days} days")
    return lines
