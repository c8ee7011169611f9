"""A bound on every call to the database that holds even when the network does not answer.

The server's own limits (`statement_timeout`, `idle_in_transaction_session_timeout`) and the
TCP ones (keepalives, `tcp_user_timeout`) cover a slow query and a host that vanished; they
do not cover a path that still takes bytes and never answers (a proxy, a pooler or a load
balancer whose far side is gone): libpq would wait for ever. The watchdog shuts down the
socket of a connection whose call has run past its deadline, so the call fails at once with
an error the pool understands (the connection is broken and is replaced).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

log = structlog.get_logger(__name__)

_TICK_SECONDS = 0.25


class Watchdog:
    """Deadlines for calls on connections (by their socket), checked by one thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._armed: dict[int, float] = {}  # socket fd -> monotonic deadline
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, fd: int) -> Iterator[None]:
        """While the block runs, the socket `fd` is shut down once `seconds` have passed."""
        with self._lock:
            self._armed[fd] = time.monotonic() + self.seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="journal-watchdog")
                self._thread.daemon = True
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._armed.pop(fd, None)

    def _run(self) -> None:
        while not self._stop.wait(_TICK_SECONDS):
            now = time.monotonic()
            with self._lock:  # held while cutting: the fd cannot be closed and reused meanwhile
                for fd in [fd for fd, deadline in self._armed.items() if deadline <= now]:
                    del self._armed[fd]
                    _cut(fd)
                    log.warning("journal_call_cut", seconds=self.seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _cut(fd: int) -> None:
    """Shut the socket down (both ways) through a duplicate of its descriptor: the owner's
    blocked read returns at once with the connection closed."""
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()
