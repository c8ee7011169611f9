"""An event loop in a thread of its own, for work that must go on answering while the
daemon's main loop is busy or stuck (the health endpoint must be able to say so)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
_JOIN_SECONDS = 10.0  # what is left after stop() is cancelled; only a blocked call can take long


class LoopThread:
    """`start` runs a fresh event loop in a daemon thread; `run` awaits a coroutine on it
    from another loop; `stop` cancels what is left, closes the loop and joins the thread."""

    def __init__(
        self,
        name: str,
        exception_handler: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
        | None = None,
    ) -> None:
        """`exception_handler` sees what nobody awaited (the daemon's logs only its class and
        place: an exception's text may quote a password)."""
        self.name = name
        self._exception_handler = exception_handler
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        if self._exception_handler is not None:
            loop.set_exception_handler(self._exception_handler)
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()
            _finish(loop)

        self.loop = loop
        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        started.wait()

    async def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Await `factory()` on the thread's loop, from the caller's loop."""
        assert self.loop is not None

        async def call() -> T:
            return await factory()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        loop, thread = self.loop, self._thread
        self.loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, _JOIN_SECONDS)


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending, let them end, and close the loop."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
