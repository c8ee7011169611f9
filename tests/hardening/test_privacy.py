"""No personal data in logs or acknowledgments, and logging that survives stream changes."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from router.logs import configure_logging


def test_default_stream_follows_standard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging to the default stream writes to the current sys.stderr, even a replaced one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info", "json")
    structlog.get_logger("test").warning("first_line")
    monkeypatch.setattr(sys, "stderr", second)
    first.close()  # a closed earlier stream (a finished capture) must not break logging
    structlog.get_logger("test").warning("second_line")
    assert "second_line" in second.getvalue()
    configure_logging("info", "json")
