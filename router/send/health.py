"""How the relay has been answering lately, and the shape of one health check's verdict.

`RelayHealth` wraps the relay the pipeline sends through; `/readyz`
(router/service/http.py) reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.send.relay import PermanentDeliveryError, Relay, TransientDeliveryError


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

    def describe(self) -> str:
        """See `Relay`."""
        return self.inner.describe()

    async def close(self) -> None:
        """See `Relay`."""
        await self.inner.close()

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """See `Relay`."""
        try:
            reply = await self.inner.send(message, sender=sender, recipients=recipients)
        except TransientDeliveryError:
            self._failed()
            raise
        except PermanentDeliveryError:
            self._reached()  # a refusal for good: the relay is there and answering
            raise
        self._reached()
        return reply

    def _reached(self) -> None:
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
        """OK unless transient failures have gone on for `grace` seconds without a success."""
        now = self.clock()
        failing = self.streak_started is not None and now - self.streak_started >= grace
        return Check(
            ok=not failing,
            detail={
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
