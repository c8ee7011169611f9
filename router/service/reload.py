"""Rules hot reload: notice a changed rules directory (or SIGHUP), validate it, swap it in.

An invalid change never replaces working rules: the daemon keeps routing with the version it
has, logs every problem (file, line, field: rules are not personal data) and counts the
attempt as `router_rules_reloads{result="invalid"}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog

from router.core.aio import wait_any
from router.core.rules.loader import RulesError, load_rules
from router.core.rules.model import Rules
from router.metrics import Metrics

log = structlog.get_logger(__name__)

POLL_SECONDS = 2.0
# After a change is seen, wait this long for the editor (or rsync, or git) to finish writing.
SETTLE_SECONDS = 0.3
_MAX_SETTLE_ROUNDS = 10
_RULES_SUFFIXES = (".yaml", ".yml")

Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """Name, inode, size and mtime (ns) of every YAML file under `directory`, sorted.

    A missing or unreadable directory gives an empty fingerprint (the reload then reports it).
    """
    found = []
    try:
        paths = [p for p in directory.rglob("*") if p.suffix in _RULES_SUFFIXES]
    except OSError:
        return ()
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # removed while we looked: the next poll sees the directory without it
        relative = path.relative_to(directory).as_posix()
        found.append((relative, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


class RulesWatcher:
    """Polls a rules directory and swaps in each valid new version.

    Args:
        directory: the rules directory (`settings.rules_dir`).
        current: returns the rules in force.
        apply: swaps in new rules (`Daemon.set_rules`).
        metrics: where reload attempts are counted.
        interval: seconds between polls.
    """

    def __init__(
        self,
        directory: Path,
        *,
        current: Callable[[], Rules],
        apply: Callable[[Rules], None],
        metrics: Metrics,
        interval: float = POLL_SECONDS,
    ) -> None:
        self.directory = directory
        self.current = current
        self.apply = apply
        self.metrics = metrics
        self.interval = interval
        self.settle = SETTLE_SECONDS
        self.last_result: str | None = None
        # Set after every reload attempt; tests clear it, change the rules and wait on it.
        self.attempted = asyncio.Event()
        self._requested = asyncio.Event()
        # Taken now, when the rules in force were just loaded from this directory, so that a
        # change made between start-up and the first poll is not missed.
        self._fingerprint = fingerprint(directory)

    def request(self) -> None:
        """Reload at once even if nothing looks changed (the SIGHUP handler)."""
        self._requested.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set. An unexpected error is logged and polling goes on."""
        while not stop.is_set():
            await wait_any(stop, self._requested, seconds=self.interval)
            if stop.is_set():
                return
            forced = self._requested.is_set()
            self._requested.clear()
            try:
                await self._poll(forced)
            except Exception as exc:  # the old rules keep routing; say why
                log.exception("rules_watch_failed", error=type(exc).__name__)

    async def _poll(self, forced: bool) -> None:
        seen = await asyncio.to_thread(fingerprint, self.directory)
        if seen == self._fingerprint and not forced:
            return
        for _ in range(_MAX_SETTLE_ROUNDS):
            await asyncio.sleep(self.settle)
            settled = await asyncio.to_thread(fingerprint, self.directory)
            if settled == seen:
                break
            seen = settled
        self._fingerprint = seen
        await self.reload("sighup" if forced else "changed")

    async def reload(self, trigger: str) -> str:
        """Load, validate and swap in the rules directory.

        Returns:
            "ok" (new rules in force), "unchanged" (same version) or "invalid" (old kept).
        """
        old = self.current()
        try:
            rules = await asyncio.to_thread(load_rules, self.directory)
        except RulesError as exc:
            result = self._invalid(exc, trigger, old)
        except OSError as exc:
            log.error(
                "rules_reload_invalid", trigger=trigger, error=str(exc), kept=old.version[:12]
            )
            self.metrics.rules_reloads.labels("invalid").inc()
            result = "invalid"
        else:
            result = self._swap(rules, old, trigger)
        self.last_result = result
        self.attempted.set()
        return result

    def _invalid(self, exc: RulesError, trigger: str, old: Rules) -> str:
        for problem in exc.problems:
            log.error(
                "rules_problem",
                file=problem.file,
                line=problem.line,
                field=problem.field,
                problem=problem.message,
            )
        log.error(
            "rules_reload_invalid",
            trigger=trigger,
            problems=len(exc.problems),
            kept=old.version[:12],
        )
        self.metrics.rules_reloads.labels("invalid").inc()
        return "invalid"

    def _swap(self, rules: Rules, old: Rules, trigger: str) -> str:
        if rules.version == old.version:
            log.info("rules_unchanged", trigger=trigger, rules=old.version[:12])
            return "unchanged"
        self.apply(rules)
        self.metrics.rules_reloads.labels("ok").inc()
        log.info(
            "rules_reloaded",
            trigger=trigger,
            rules=rules.version[:12],
            previous=old.version[:12],
            areas=len(rules.areas),
        )
        return "ok"
