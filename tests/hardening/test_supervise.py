"""The supervisor: a loop that fails is counted, logged once per failure, restarted with
backoff, reported as failing until it gets through a round, and stopped on request."""

from __future__ import annotations

import asyncio
import json

from router.metrics import Metrics
from router.service.supervise import BACKOFF_FIRST_SECONDS, Supervisor


async def test_failing_loop_is_restarted_counted_and_recovers(log_capture) -> None:  # type: ignore[no-untyped-def]
    """A loop that raises twice runs a third time; restarts are counted by task, the
    failure is logged once with the error class (not its text), and `ok` clears it."""
    buffer = log_capture("info")
    metrics, stop = Metrics(), asyncio.Event()
    supervisor = Supervisor(metrics, stop)
    runs: list[int] = []
    healthy = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise KeyError("secret-canary")
        supervisor.ok("work")
        healthy.set()
        await stop.wait()

    task = supervisor.start("work", loop)
    await asyncio.wait_for(healthy.wait(), 10)
    assert metrics.task_restarts.labels("work")._value.get() == 2
    assert supervisor.failing() == {}
    stop.set()
    await asyncio.wait_for(task, 5)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    failures = [line for line in lines if line["event"] == "task_failed"]
    first = ("KeyError", BACKOFF_FIRST_SECONDS)
    assert [(f["error"], f["restart_in"]) for f in failures] == [first]
    assert "secret-canary" not in buffer.getvalue()


async def test_loop_that_keeps_failing_is_reported_until_stopped() -> None:
    """While a loop cannot finish a round it is listed as failing with its error class;
    setting the stop event ends the supervision during the backoff."""
    metrics, stop = Metrics(), asyncio.Event()
    supervisor = Supervisor(metrics, stop)
    failed = asyncio.Event()

    async def loop() -> None:
        failed.set()
        raise OSError(28, "No space left on device")

    task = supervisor.start("pipeline", loop)
    await asyncio.wait_for(failed.wait(), 5)
    assert supervisor.failing()["pipeline"].error == "OSError"
    stop.set()
    await asyncio.wait_for(task, 5)
