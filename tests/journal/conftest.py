"""Fixtures for the journal tests: journals on each backend, nodes sharing one PostgreSQL
journal, and real `serve` processes (shared with the lifecycle tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from router.journal.opener import open_journal
from router.journal.protocol import Journal
from tests.conftest import make_settings
from tests.service.test_lifecycle import router_process

__all__ = ["router_process"]


@pytest.fixture
def journal_factory(journal: str, tmp_path: Path) -> Iterator[Callable[..., Journal]]:
    """Open journals on the test's backend (one database or state directory per test), as
    separate nodes, and close them after the test."""
    opened: list[Journal] = []

    def open_one(node: str = "node-a") -> Journal:
        settings = make_settings(tmp_path, journal=journal, node_name=node)
        opened.append(open_journal(settings))
        return opened[-1]

    yield open_one
    for each in opened:
        each.close()


@pytest.fixture
def shared_journals(postgres_url: str, tmp_path: Path) -> Iterator[Callable[..., Journal]]:
    """Open nodes on one fresh PostgreSQL journal (what several routers share)."""
    opened: list[Journal] = []

    def open_node(node: str) -> Journal:
        settings = make_settings(tmp_path / node, journal=postgres_url, node_name=node)
        opened.append(open_journal(settings))
        return opened[-1]

    yield open_node
    for each in opened:
        each.close()
