"""A check at start that the SMTP relay answers and is usable as configured (EHLO with
`ROUTER_HELO_NAME`, STARTTLS, AUTH, then MAIL FROM the router and RCPT TO the review
address, and RSET), retried until it is, so a relay that refuses the router shows in the log
and on /readyz before the first referral waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from router.core.aio import wait_any
from router.core.redaction import redact
from router.send.relay import DeliveryError, Relay

log = structlog.get_logger(__name__)


class RelayProbe:
    """Probes the relay at start; on failure logs a warning and tries again with backoff.

    `ok` stays true for a relay with nothing to probe (a Maildir) and until the first
    probe has failed; `checked` is set after each attempt.
    """

    def __init__(self, relay: Relay, *, first_retry: float = 5.0, max_retry: float = 300.0):
        self.relay = relay
        self.first_retry, self.max_retry = first_retry, max_retry
        self.error: str | None = None
        self.code: int | None = None  # the relay's reply code to the failing probe
        self.failed_at: float | None = None  # time.time() of the last failed probe
        self.attempts = 0
        self.checked = asyncio.Event()

    @property
    def ok(self) -> bool:
        return self.error is None

    def overtaken(self, last_success: float | None) -> bool:
        """Whether a mail went through the relay after the last failed probe (the probe's
        verdict is then out of date, whatever its next try says)."""
        return (
            self.failed_at is not None
            and last_success is not None
            and (last_success >= self.failed_at)
        )

    def detail(self) -> dict[str, Any]:
        """What /readyz shows of the probe (the relay's own error text, no personal data)."""
        if self.error is None:
            return {"probe": "ok" if self.attempts else "not probed"}
        return {
            "probe": "failing",
            "probe_error": self.error,
            "probe_reply_code": self.code,
            "probe_attempts": self.attempts,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until the relay is usable or `stop` is set."""
        probe: Callable[[], Awaitable[object]] | None = getattr(self.relay, "probe", None)
        if probe is None:
            return
        delay = self.first_retry
        while not stop.is_set():
            self.attempts += 1
            try:
                await probe()
            except DeliveryError as exc:
                self.error = redact(str(exc) or type(exc).__name__, 300)
                self.code, self.failed_at = exc.code, time.time()
                log.warning(
                    "relay_unusable",
                    relay=self.relay.describe(),
                    error=self.error,
                    retry_seconds=round(delay, 1),
                )
            else:
                log.info("relay_checked", relay=self.relay.describe(), attempts=self.attempts)
                self.error, self.code = None, None
                self.checked.set()
                return
            self.checked.set()
            await wait_any(stop, seconds=delay)
            delay = min(delay * 2, self.max_retry)
