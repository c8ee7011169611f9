"""Small asyncio helpers shared by the daemon's loops."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Return when any of `events` is set or `seconds` pass, whichever comes first."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
