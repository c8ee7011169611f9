"""Structured logging: JSON by default, console on a terminal, never the referred person's data."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

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


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog (and the stdlib loggers of our dependencies) once per process.

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
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(target),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Third-party loggers (aiosmtpd logs each client's commands, pypdf logs content
    # fragments on broken files) stay at warning and never below, whatever our level.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=target, force=True)
    for noisy in ("mail.log", "pypdf", "aioimaplib", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
