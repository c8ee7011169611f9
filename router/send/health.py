"""How the relay has been answering lately, and the shape of one health check's verdict.

`RelayHealth` wraps the relay the pipeline sends through; `/readyz`
(router/service/http.py) reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.core.redaction import redact
from router.send.relay import PermanentDeliveryError, Relay, RelayFaultError, TransientDeliveryError


@dataclass
class RelayFault:
    """The relay refusing the router's session (router.send.failures): since when, its reply
    code and text (addresses reduced to their domain), and how many sends it refused."""

    since: float
    code: int | None
    reply: str
    refused_sends: int = 1


class RelayHealth:
    """Wraps the relay the pipeline sends through and remembers how its recent sends went.

    See `Relay`. A transient failure (connection refused, 4xx, TLS trouble) counts against the
    relay; a permanent refusal (5xx) still shows the relay answering, so it counts as reached.
    """

    def __init__(self, relay: Relay, clock: Callable[[], float] = time.time) -> None:
        self.inner = relay
        self.clock = clock
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.failure_streak = 0
        self.streak_started: float | None = None
        self.fault: RelayFault | None = None  # the relay refuses the router, until a 250
        self.cleared: RelayFault | None = None  # a fault that ended, until `take_cleared`

    def describe(self) -> str:
        """See `Relay`."""
        return self.inner.describe()

    @property
    def size_limit(self) -> int | None:
        """The relay's SIZE as last learnt (`SmtpRelay.size_limit`); None for a Maildir."""
        limit = getattr(self.inner, "size_limit", None)
        return limit if isinstance(limit, int) else None

    async def close(self) -> None:
        """See `Relay`."""
        await self.inner.close()

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """See `Relay`."""
        try:
            reply = await self.inner.send(message, sender=sender, recipients=recipients)
        except RelayFaultError as exc:
            self._failed()
            self.refused(exc)
            raise
        except TransientDeliveryError:
            self._failed()
            raise
        except PermanentDeliveryError:
            self._reached()  # a refusal for good: the relay is there and answering
            raise
        self._reached()
        return reply

    def refused(self, exc: RelayFaultError) -> None:
        """Remember that the relay refuses the router (a send, or the start-up probe)."""
        if self.fault is None:
            reply = redact(exc.detail, 200)
            self.fault = RelayFault(since=self.clock(), code=exc.code, reply=reply)
        else:
            self.fault.refused_sends += 1

    def take_cleared(self) -> RelayFault | None:
        """The refusal that the last accepted mail ended, once (for the one alert about it)."""
        cleared, self.cleared = self.cleared, None
        return cleared

    def _reached(self) -> None:
        if self.fault is not None:
            self.cleared, self.fault = self.fault, None
        self.last_success = self.clock()
        self.failure_streak = 0
        self.streak_started = None

    def _failed(self) -> None:
        now = self.clock()
        self.last_failure = now
        if self.failure_streak == 0:
            self.streak_started = now
        self.failure_streak += 1

    def check(self, grace: float) -> Check:
        """OK unless the relay refuses the router (at once), or transient failures have gone
        on for `grace` seconds without a success."""
        now = self.clock()
        failing = self.streak_started is not None and now - self.streak_started >= grace
        refusing: dict[str, Any] = {}
        if self.fault is not None:
            refusing = {
                "refusing_the_router": True,
                "reply_code": self.fault.code,
                "reply": self.fault.reply,
                "refusing_for_seconds": age(self.fault.since, now),
            }
        return Check(
            ok=not failing and self.fault is None,
            detail={
                **refusing,
                "failure_streak": self.failure_streak,
                "failing_for_seconds": age(self.streak_started, now),
                "last_success_seconds_ago": age(self.last_success, now),
                "last_failure_seconds_ago": age(self.last_failure, now),
            },
        )


@dataclass(frozen=True)
class Check:
    """One health check's verdict and what it saw (nothing personal)."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


def age(moment: float | None, now: float) -> float | None:
    """Seconds from `moment` to `now`, to a tenth, never negative; None for never."""
    return None if moment is None else round(max(0.0, now - float(moment)), 1)
