"""Keeps the daemon's long-running loops alive: an unexpected error is logged once, counted,
and the loop starts again after a backoff, while health checks say which loop is failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from router.core.aio import wait_any
from router.logs import where
from router.metrics import Metrics

log = structlog.get_logger(__name__)

# First and longest wait before a failed loop runs again. The longest stays short: a
# journal lock or a full disk that has cleared must not leave referrals waiting long.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


@dataclass
class TaskHealth:
    """How one supervised loop is doing (nothing personal: error classes and counts)."""

    restarts: int = 0
    failing_since: float | None = None  # monotonic time of the first failure in a streak
    error: str | None = None  # class of the last unexpected error
    where: str | None = None  # file:line where it was raised
    backoff: float = BACKOFF_FIRST_SECONDS


class Supervisor:
    """Runs named loops; restarts one that fails with backoff; remembers what failed.

    A loop reports progress with `ok(name)`: that ends its failure streak and resets the
    backoff, so health checks fail only while a loop cannot get through a round.
    """

    def __init__(
        self,
        metrics: Metrics,
        stop_event: asyncio.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.stop_event = stop_event
        self.clock = clock
        self.health: dict[str, TaskHealth] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `loop()` until the stop event is set, restarting it after each failure."""
        self.health[name] = TaskHealth()
        self.metrics.task_restarts.labels(name)  # the series exists (0) from the start
        task = asyncio.create_task(self._supervise(name, loop), name=name)
        self.tasks[name] = task
        return task

    def ok(self, name: str) -> None:
        """`name` finished a round: it is healthy again."""
        health = self.health.get(name)
        if health is not None and health.failing_since is not None:
            log.info("task_recovered", task=name, restarts=health.restarts)
            health.failing_since = None
            health.backoff = BACKOFF_FIRST_SECONDS

    def failing(self) -> dict[str, TaskHealth]:
        """The loops that failed and have not finished a round since."""
        return {name: h for name, h in self.health.items() if h.failing_since is not None}

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        health = self.health[name]
        while not self.stop_event.is_set():
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the point of a supervisor: any error, counted and retried
                self._failed(name, health, type(exc).__name__, where(exc))
            else:
                if self.stop_event.is_set():
                    return
                self._failed(name, health, "returned", None)  # a loop must not just end
            await wait_any(self.stop_event, seconds=health.backoff)
            health.backoff = min(health.backoff * 2, BACKOFF_MAX_SECONDS)

    def _failed(self, name: str, health: TaskHealth, error: str, where: str | None) -> None:
        health.restarts += 1
        self.metrics.task_restarts.labels(name).inc()
        # Logged once per streak and error class (repeats go to debug, `task_recovered`
        # ends the streak), with the class and place only: an exception's text can quote
        # a referral.
        repeated = health.failing_since is not None and health.error == error
        if health.failing_since is None:
            health.failing_since = self.clock()
        health.error, health.where = error, where
        (log.debug if repeated else log.error)(
            "task_failed",
            task=name,
            error=error,
            where=where,
            restarts=health.restarts,
            restart_in=round(health.backoff, 1),
        )
