"""`referral-router serve` as a process: the rules checked first, the state directory's owner
lock (a local journal has one owner), signals (TERM and INT stop, HUP reloads the rules), the
daemon started and its loops supervised, then a stop in order: intake first, the loops given
`ROUTER_SHUTDOWN_SECONDS`, and everything released."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog

from router.core.rules.model import Rules
from router.journal.files import ensure_dir
from router.journal.owner import OwnerLock, StateDirInUse
from router.journal.records import JournalUnavailable
from router.logs import log_loop_exception
from router.service.daemon import Daemon
from router.settings import Settings

log = structlog.get_logger(__name__)


def serve(settings: Settings) -> int:
    """`referral-router serve`: load rules (a clear error if they are bad) and run."""
    from router.errors import CommandError, load_rules_or_fail

    rules = load_rules_or_fail(settings.rules_dir)
    if not rules.areas:
        raise CommandError(f"no areas in {settings.rules_dir}")
    owner = None if settings.journal else OwnerLock(settings.state_dir)
    if owner is not None:  # a local journal has one owner; PostgreSQL is shared by design
        try:
            ensure_dir(settings.state_dir)
            owner.acquire()
        except (StateDirInUse, OSError) as exc:
            print(f"referral-router: cannot start: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_serve(settings, rules))
    finally:
        if owner is not None:
            owner.release()


async def _serve(settings: Settings, rules: Rules) -> int:
    try:
        daemon = Daemon(settings, rules)
    except (OSError, ValueError, JournalUnavailable) as exc:
        # An unwritable state directory, a CA file that does not load: say so plainly.
        print(f"referral-router: cannot start: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(log_loop_exception)  # class and place, never the text
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop_event.set)
    try:
        await daemon.start()
    except (OSError, ValueError) as exc:
        print(f"referral-router: cannot start: {exc}", file=sys.stderr)
        await daemon.close()
        return 2
    loop.add_signal_handler(signal.SIGHUP, daemon.rules_watcher.request)  # operations: reload
    log.info(
        "started",
        inbox=settings.inbox_endpoint.scheme,
        relay=daemon.relay.describe(),
        rules=rules.version[:12],
        areas=len(rules.areas),
    )
    worker = daemon.start_pipeline()
    await daemon.stop_event.wait()
    log.info("stopping")
    if daemon.inbox is not None and hasattr(daemon.inbox, "stop"):
        await daemon.inbox.stop()  # stop intake first
    try:
        await asyncio.wait_for(worker, settings.shutdown_seconds)
    except TimeoutError:
        log.warning("stop_timeout", seconds=settings.shutdown_seconds)
    await daemon.close()
    log.info("stopped")
    return 0
