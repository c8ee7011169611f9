"""Fixtures for the hardening tests: a routing engine on the bundled rules, captured logs."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from router.logs import configure_logging
from tests.hardening.serve import serve  # noqa: F401  (fixture: a real `serve` process)

REVIEW = "review@router.example"
ROUTER_FROM = "referrals@router.example"


@pytest.fixture(scope="session")
def engine(bundled_rules: Rules) -> RoutingEngine:
    """A routing engine on the bundled rules, with the test settings' review address."""
    return RoutingEngine(bundled_rules, review_address=REVIEW)


@pytest.fixture
def log_capture() -> Iterator[Callable[[str], io.StringIO]]:
    """Send every log line (structlog and stdlib) to a fresh buffer at a given level.

    Logging is set back to the defaults (info, standard error) afterwards.
    """

    def capture(level: str) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(level, "json", stream=buffer)
        return buffer

    yield capture
    configure_logging("info", "json")
