"""The console's server: its own thread, so it answers while the router's event loop is busy."""

from __future__ import annotations

import threading
from typing import Any

import httpx2


async def test_console_answers_while_the_event_loop_is_blocked(console_daemon: Any) -> None:
    """With the daemon's event loop blocked (a stand-in for a stuck step), the console still
    serves its overview, saying what it can, within the block."""
    daemon = await console_daemon(console_auth="none")
    url = daemon.settings.console_public_url
    answered = threading.Event()
    seen: list[httpx2.Response] = []

    def fetch() -> None:
        with httpx2.Client(timeout=10) as client:
            seen.append(client.get(f"{url}/"))
        answered.set()

    threading.Thread(target=fetch, daemon=True).start()
    # Blocks this (the daemon's) event loop until the console has answered, or 10 s.
    assert answered.wait(timeout=10)
    [response] = seen
    assert response.status_code == 200
    assert "Overview" in response.text and "Journal writable" in response.text
