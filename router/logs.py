"""Structured logging: JSON by default, console on a terminal, never the referred person's data."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from router.core.redaction import redact
from router.models import PERSONAL_FIELDS

# Keys that may carry personal data however a caller spells them. Their values are masked
# whatever they hold, so a careless `log.info("x", fields=...)` cannot leak a referral.
_MASKED_KEYS = frozenset(
    {
        *PERSONAL_FIELDS,
        "fields",
        "form_fields",
        "subject",
        "body",
        "text",
        "raw",
        "data",
        "password",
        "secret",
        "dob",
        "name",
        "address",
        "postcode",
    }
)
_MASK = "[masked]"


class _StandardError:
    """Standard error looked up at each write, not once at set-up.

    Binding the stream object at configuration time kept writing to whatever `sys.stderr`
    was then, even after it was replaced and closed (a test's capture, a daemonising
    wrapper): every later log call failed with "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def mask_personal_data(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that replaces the value of any personal-data key."""
    for key in list(event):
        if key.lower() in _MASKED_KEYS:
            event[key] = _MASK
    return event


def where(exc: BaseException | None) -> str | None:
    """`file:line` where `exc` was raised (its innermost frame), or None."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else []
    if not frames:
        return None
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def _foreign_record(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A third-party (stdlib logging) record as one of ours: its logger's name, its text on
    one line with addresses reduced to their domain, and of an exception only the class and
    the place. A library's exception text can quote what it was sending (aioimaplib's
    `Abort` quotes the LOGIN command, password included)."""
    record = event.get("_record")
    if record is not None:
        event["logger"] = record.name
    event["event"] = redact(str(event.get("event", "")), 500)
    exc_info = event.pop("exc_info", None)
    if isinstance(exc_info, tuple) and exc_info[1] is not None:
        event["error"] = type(exc_info[1]).__name__
        event["where"] = where(exc_info[1])
    event.pop("stack_info", None)
    return event


def log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loops' exception handler: the error's class and place, never its text nor
    asyncio's message (which quotes the handle, the task or the exception). Installed with
    `loop.set_exception_handler` by `serve` and by every loop thread."""
    del loop
    exc = context.get("exception")
    source = next(
        (type(context[key]).__name__ for key in ("protocol", "task", "future", "handle")
         if key in context),
        None,
    )  # fmt: skip
    structlog.get_logger(__name__).error(
        "loop_exception",
        error=type(exc).__name__ if exc is not None else None,
        where=where(exc),
        source=source,
    )


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog, and route the stdlib loggers of our dependencies through it, once
    per process: every line is one JSON object (or one console line), masked alike.

    Args:
        level: debug, info, warning or error.
        fmt: json, console, or auto (console when `stream` is a terminal).
        stream: where lines go; standard error by default so stdout stays for command output.
    """
    target: TextIO | _StandardError = stream or _StandardError()
    numeric = logging.getLevelNamesMapping()[level.upper()]
    console = fmt == "console" or (fmt == "auto" and target.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            mask_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(target),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Third-party records (psycopg_pool's multi-line warnings, asyncio, aiosmtpd) go
    # through the same processors: one masked object per line, never an exception's text.
    handler = logging.StreamHandler(target)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.processors.add_log_level, stamp, _foreign_record],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                mask_personal_data,
                renderer,
            ],
        )
    )
    # They stay at warning and never below, whatever our level (aiosmtpd logs each
    # client's commands, pypdf logs content fragments on broken files).
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    for noisy in ("mail.log", "pypdf", "aioimaplib", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
