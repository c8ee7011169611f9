"""Shared fixtures: real servers on loopback (SMTP capture, Dovecot) and the bundled rules."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.servers.smtp", "tests.servers.dovecot"]

ROOT = Path(__file__).resolve().parent.parent
REALWORLD = ROOT.parent / "shared" / "realworld"


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    """The bundled rules directory."""
    return ROOT / "rules"


@pytest.fixture(scope="session")
def bundled_rules(rules_dir: Path):  # type: ignore[no-untyped-def]
    """The bundled rules, loaded and validated."""
    from router.rules.loader import load_rules

    return load_rules(rules_dir)
