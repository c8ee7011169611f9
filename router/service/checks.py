"""The health checks that need the journal, run in a thread of their own so that `/readyz`
answers at once from their last verdict, and `/healthz` never waits on the journal at all.

A journal that does not answer (locked, its database down) keeps one check waiting; the
verdict turns to failing once that wait passes the bound, while the endpoint answers on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from router.journal.protocol import Journal
from router.send.health import Check

log = structlog.get_logger(__name__)

CHECK_INTERVAL_SECONDS = 1.0  # how often the journal is asked
_JOIN_SECONDS = 1.0  # a check stuck on the journal is left behind at stop (a daemon thread)


class JournalChecks:
    """Asks the journal, every `interval` seconds in a daemon thread, to take a tiny durable
    write (`Journal.probe`) and how old the oldest undecided message is.

    `timeout` and `undecided_grace` may be changed while it runs (tests shorten them).
    """

    def __init__(
        self,
        journal: Journal,
        *,
        timeout: float,
        undecided_grace: float,
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.timeout = timeout
        self.undecided_grace = undecided_grace
        self.interval = interval
        self.clock = clock
        self.rounds = 0  # finished rounds
        self._journal = Check(False, {"state": "not checked yet"})
        self._undecided = Check(True, {"oldest_seconds": None})
        self._pending_since: float | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the checks in their thread until `stop` (the first round at once)."""
        self._thread = threading.Thread(target=self._run, name="router-checks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread; a round stuck on the journal is not waited for."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)

    def next_round(self, timeout: float = 30.0) -> bool:
        """Start a round now and wait until it has finished (tests); False on timeout."""
        with self._changed:
            wanted = self.rounds + 1 if self._pending_since is None else self.rounds + 2
            self._kick.set()
            return self._changed.wait_for(lambda: self.rounds >= wanted, timeout)

    def journal_check(self) -> Check:
        """The last verdict on the journal, failing while a write has waited past `timeout`."""
        pending = self._pending_since
        if pending is not None and self.clock() - pending >= self.timeout:
            return Check(False, {"error": f"no write within {self.timeout:g} s"})
        return self._journal

    def undecided_check(self) -> Check:
        """The last verdict on the oldest undecided message (see `JournalChecks`)."""
        return self._undecided

    def _run(self) -> None:
        while not self._stop.is_set():
            self._round()
            self._kick.wait(self.interval)
            self._kick.clear()

    def _round(self) -> None:
        self._pending_since = self.clock()
        journal = self._probe()
        undecided = self._oldest_undecided() if journal.ok else self._undecided
        with self._changed:
            self._journal, self._undecided = journal, undecided
            self._pending_since = None
            self.rounds += 1
            self._changed.notify_all()

    def _probe(self) -> Check:
        started = self.clock()
        try:
            self.journal.probe()
        except Exception as exc:  # whatever the journal raises is its failing verdict
            log.warning("health_journal_failed", error=type(exc).__name__)
            return Check(False, {"error": type(exc).__name__})
        return Check(True, {"seconds": round(self.clock() - started, 4)})

    def _oldest_undecided(self) -> Check:
        try:
            received = self.journal.oldest_undecided()
        except Exception as exc:  # as in `_probe`
            return Check(False, {"error": type(exc).__name__})
        age = None if received is None else max(0.0, time.time() - received)
        ok = age is None or age <= self.undecided_grace
        shown = None if age is None else round(age, 1)
        return Check(ok, {"oldest_seconds": shown, "bound_seconds": self.undecided_grace})
