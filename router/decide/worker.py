"""Runs the analysis of each email in a worker process with a time limit and a memory bound.

A hostile PDF (a looping xref, a decompression bomb) can make a parser spin or swell; here it
can only stall or kill its worker, which is replaced, while the daemon's event loop carries on
serving IMAP IDLE and SMTP. The worker also writes the email's attachments as MIME parts
(`router.core.compose.enclose`), the other work proportional to the message's size.

The worker is started at boot, and again whenever it is replaced, from a forkserver that has
already imported the parsers, so no referral waits for imports. Worker processes watch the
daemon and exit when it dies, whatever killed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from router.core.analysis import Analysis
from router.core.routing import RoutingEngine
from router.decide import forkserver
from router.decide.bounds import WORKER_MEMORY_BYTES, AnalysisFailed, WorkerUnavailable
from router.decide.in_worker import Worked, start_worker, warm, work_in_worker

__all__ = ["WORKER_MEMORY_BYTES", "AnalysisFailed", "AnalysisSandbox", "Worked"]

log = structlog.get_logger(__name__)

SANDBOX_DEPTH = 3  # tasks in the worker's queue at once: one being read, the next ones waiting
_START_SECONDS = 30.0  # how long an analysis waits for a new worker before submitting anyway


class _WorkerDied(Exception):
    """The worker died while it held a message: tried once more on the replacement."""


class AnalysisSandbox:
    """A one-process pool that is torn down and rebuilt (warm) whenever a task overruns."""

    def __init__(self, *, timeout: float, memory_bytes: int = WORKER_MEMORY_BYTES) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.replaced = 0  # workers replaced after a failure (for metrics and benchmarks)
        self._pool: ProcessPoolExecutor | None = None
        self._warming: asyncio.Future[int] | None = None
        self._engine: RoutingEngine | None = None  # the rules a new worker warms up with
        # For /readyz (read from the endpoint's thread): a worker came up once since boot;
        # the error class of the last start that failed, None after one that worked.
        self.booted = False
        self.start_error: str | None = None
        # SANDBOX_DEPTH messages handed to the worker at once, so it never waits for the
        # daemon between two: one being read, the next ones queued behind it (each one's
        # time limit starts when the one ahead is done, see `_run`).
        self._slots = asyncio.Semaphore(SANDBOX_DEPTH)
        self._ahead: asyncio.Event | None = None  # set when the last task handed over is done
        self._generation = 0  # bumped whenever the worker is discarded
        self._closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        forkserver.preload()  # used if the forkserver is not running yet
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=start_worker,
            initargs=(self.memory_bytes, os.getpid()),
        )

    def start(self, engine: RoutingEngine | None = None) -> None:
        """Start a worker now, off the event loop (boot, and after each replacement); with
        `engine`, the worker warms up by reading the sample referral with its rules."""
        if engine is not None:
            self._engine = engine
        if self._warming is not None and self._usable(self._warming):
            return
        self._warming = asyncio.ensure_future(self._warm_up())

    @staticmethod
    def _usable(warming: asyncio.Future[int]) -> bool:
        """A start still under way, or one that succeeded."""
        if warming.cancelled():
            return False
        return not warming.done() or warming.exception() is None

    async def _warm_up(self) -> int:
        def spawn() -> Future[int]:
            if self._pool is None:
                self._pool = self._new_pool()
            engine = self._engine
            rules, review = (engine.rules, engine.review_address) if engine else (None, "")
            return self._pool.submit(warm, rules, review)

        try:
            pid = await asyncio.wrap_future(await asyncio.to_thread(spawn))
        except asyncio.CancelledError:
            raise  # discarded for a replacement, which reports for itself
        except BaseException as exc:
            self.start_error = type(exc).__name__
            log.error("sandbox_worker_start_failed", error=self.start_error)
            raise
        self.start_error = None
        self.booted = True
        log.debug("sandbox_worker_ready", pid=pid)
        return pid

    async def ready(self) -> None:
        """Wait until a worker is up (or its start failed: `work` then says why)."""
        await self._ready()

    async def started(self) -> int:
        """Wait until the worker being started (at boot or as a replacement) is up.

        Returns:
            Its process id.
        """
        self.start()
        assert self._warming is not None
        return await asyncio.shield(self._warming)

    async def _ready(self) -> ProcessPoolExecutor:
        """The pool, once its worker is up (a failed start is tried again by the caller)."""
        if self._pool is not None and not self._worker_alive():
            log.warning("sandbox_worker_replaced", reason="worker died while idle")
            self._replace()
        if self._pool is None or self._warming is None:
            self.start()
        assert self._warming is not None
        if not self._warming.done():  # up already: the common case, asked twice a message
            with contextlib.suppress(Exception):
                # A start that failed (a broken pool) shows as AnalysisFailed on submit
                # below; one that hangs is not waited for beyond a bound.
                await asyncio.wait_for(asyncio.shield(self._warming), self.timeout + _START_SECONDS)
        assert self._pool is not None
        return self._pool

    async def _up(self) -> ProcessPoolExecutor:
        """The pool, once its worker is up. A worker whose start failed is replaced once: no
        fault of the message about to be handed over.

        Raises:
            WorkerUnavailable: the replacement could not start either.
        """
        for replaced in (False, True):
            pool = await self._ready()
            warming = self._warming
            failed = (
                warming is not None
                and warming.done()
                and not warming.cancelled()
                and warming.exception() is not None
            )
            if not failed:
                return pool
            if replaced:
                break
            log.warning("sandbox_worker_replaced", reason="its start failed")
            self._replace()
        raise self._unavailable()

    def _unavailable(self) -> WorkerUnavailable:
        # `start_error` says why, for /readyz too.
        return WorkerUnavailable(f"no analysis worker could start ({self.start_error})")

    def _discard_pool(self) -> None:
        self._generation += 1
        pool, self._pool = self._pool, None
        warming, self._warming = self._warming, None
        if warming is not None and not warming.done():
            warming.cancel()
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def _replace(self) -> None:
        """Kill the worker and start a warm one in its place at once."""
        self._discard_pool()
        self.replaced += 1
        self.start()

    async def work(
        self,
        raw: bytes,
        engine: RoutingEngine,
        *,
        router_from: str,
        envelope_recipients: tuple[str, ...],
        max_attachments: int,
        trusted_authserv_ids: tuple[str, ...] = (),
    ) -> Worked:
        """Analyse one email and write its parts in the worker. The time limit starts when
        the worker takes it up: neither a worker still starting nor messages ahead of it in
        the queue count against it.

        Raises:
            AnalysisFailed: on timeout, memory exhaustion or a dead worker.
        """
        task = functools.partial(
            work_in_worker,
            raw,
            engine.rules,
            engine.review_address,
            router_from,
            envelope_recipients,
            max_attachments,
            tuple(trusted_authserv_ids),
        )
        self._engine = engine
        deaths_left = 1  # a worker that dies under a message: once on the next, then failed
        async with self._slots:
            while True:  # again each time the worker is discarded before it takes it up
                done = asyncio.Event()
                try:
                    worked = await self._run(task, done, retry_if_died=deaths_left > 0)
                except _WorkerDied:
                    deaths_left -= 1
                    continue
                finally:
                    done.set()
                if worked is not None:
                    return worked

    async def _run(
        self, task: Callable[[], Worked], done: asyncio.Event, *, retry_if_died: bool = False
    ) -> Worked | None:
        """Hand one task to the worker and wait for it under the time limit, which starts
        when the task ahead of it (the worker reads one at a time, in order) is done.

        Returns:
            The result, or None when the worker was replaced before this task started
            (the one ahead overran or died): the task was not read, and goes again.
        """
        if self._closed:
            raise AnalysisFailed("the analysis worker is shut down")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(await self._up(), task)
        except BrokenProcessPool:
            # The idle worker died between two messages (killed, out of memory): no fault
            # of this message. Replace the worker and go on.
            log.warning("sandbox_worker_replaced", reason="worker died while idle")
            self._replace()
            try:
                future = loop.run_in_executor(await self._up(), task)
            except BrokenProcessPool as exc:
                raise self._unavailable() from exc
        generation, ahead, self._ahead = self._generation, self._ahead, done
        if ahead is not None:
            await ahead.wait()  # the worker takes this task up as the one ahead ends
        if self._generation != generation:
            future.cancel()
            return None  # discarded with the worker that the task ahead overran or killed
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if future.cancelled() and current is not None and not current.cancelling():
                return None  # the worker was discarded under it (not this task cancelled)
            raise
        except TimeoutError:
            self._replace_if(generation)
            raise AnalysisFailed(
                f"reading the message took longer than {self.timeout:g} s"
            ) from None
        except MemoryError:
            self._replace_if(generation)
            raise AnalysisFailed("reading the message ran out of memory") from None
        except BrokenProcessPool:
            self._replace_if(generation)
            if retry_if_died:
                # A worker killed (out of memory, by an admin) a moment before this message
                # was handed over, its death not yet seen, fails it too: the message is
                # tried once on the replacement. One that kills that one too is failed.
                log.warning("sandbox_worker_died_under_message", retried=True)
                raise _WorkerDied from None
            raise AnalysisFailed("the reader process died") from None

    def _replace_if(self, generation: int) -> None:
        """Replace the worker this task ran in, unless that was done already."""
        if self._generation == generation:
            self._replace()

    async def analyse(
        self,
        raw: bytes,
        engine: RoutingEngine,
        *,
        router_from: str,
        envelope_recipients: tuple[str, ...],
        max_attachments: int,
        trusted_authserv_ids: tuple[str, ...] = (),
    ) -> Analysis:
        """Analyse one email in the worker (see `work`); the attachments' bytes are left out.

        Raises:
            AnalysisFailed: on timeout, memory exhaustion or a dead worker.
        """
        worked = await self.work(
            raw,
            engine,
            router_from=router_from,
            envelope_recipients=envelope_recipients,
            max_attachments=max_attachments,
            trusted_authserv_ids=trusted_authserv_ids,
        )
        return worked.analysis

    def _worker_alive(self) -> bool:
        processes = getattr(self._pool, "_processes", None) or {}
        return all(process.is_alive() for process in processes.values())

    def worker_pids(self) -> list[int]:
        """The process ids of the live worker(s); empty before the first analysis."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.pid is not None and p.is_alive()]

    def close(self) -> None:
        self._closed = True
        self._discard_pool()
