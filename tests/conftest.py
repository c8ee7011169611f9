"""Shared fixtures: real servers on loopback (SMTP capture, Dovecot) and the bundled rules."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test modules and what they import load with the cyclic garbage collector off, and are
# then frozen out of later collections (pytest_runtestloop): the router's daemon and
# forkserver do the same (router/cli.py, router/decide/readers.py).
gc.disable()

pytest_plugins = [
    "tests.servers.smtp",
    "tests.servers.token",
    "tests.servers.dovecot",
    "tests.servers.postgres",
    "tests.servers.graph",
    "tests.servers.oidc",
    "tests.servers.postfix",
]

ROOT = Path(__file__).resolve().parent.parent
REALWORLD = ROOT.parent / "shared" / "realworld"


@pytest.fixture(autouse=True, scope="session")
def _no_router_settings_from_outside() -> Iterator[None]:
    """ROUTER_* variables of the shell that runs pytest do not reach the tests' settings
    (pydantic-settings reads the environment for every field a test does not pass)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ROUTER_")}
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _logging_as_serve_sets_it() -> None:
    """Every test starts with the logging `serve` sets by default (info, JSON, standard
    error), whatever an earlier test configured (`main` sets a command's level, some tests
    capture at debug), and with no structlog context variables bound."""
    import structlog

    from router.logs import configure_logging

    structlog.contextvars.clear_contextvars()
    configure_logging("info", "json")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts) starts two workers per core: most of the suite's time
    is spent waiting on servers, subprocesses and deadlines, not computing. At most 12
    (tests.servers.ports gives each worker its own block of ports)."""
    return min(12, 2 * len(os.sched_getaffinity(0)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the tests marked `slow` first (after pytest-randomly's shuffle, which stays the
    order within each group): under pytest-xdist a long test that starts last keeps one
    worker busy after the others have finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """The tests are collected (or, in pytest-xdist's controller, are about to be handed
    out): freeze what loading made, and collect garbage as usual from here on."""
    gc.freeze()
    gc.enable()


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    """The bundled rules directory."""
    return ROOT / "rules"


@pytest.fixture(scope="session")
def bundled_rules(rules_dir: Path):  # type: ignore[no-untyped-def]
    """The bundled rules, loaded and validated."""
    from router.core.rules.loader import load_rules

    return load_rules(rules_dir)


def make_settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings for a test daemon: state under tmp_path, bundled rules, no HTTP by default."""
    from router.settings import Settings
    from tests.servers.smtp import free_port

    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "rules_dir": ROOT / "rules",
        "inbox": f"smtp://127.0.0.1:{free_port()}",
        "relay": f"maildir:{tmp_path / 'outbox'}",
        "from_address": "referrals@router.example",
        "review_address": "review@router.example",
        "http": "",
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "parse_timeout_seconds": 20.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest) -> str:
    """The ROUTER_JOURNAL setting of a test daemon: every journal test runs on both backends
    (empty: SQLite in the state directory; else a fresh database on the session's server)."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def daemon_factory(tmp_path: Path, bundled_rules, journal: str):  # type: ignore[no-untyped-def]
    """Start in-process daemons (embedded SMTP inbox) and close them all after the test, on
    each journal backend (see `journal`)."""
    from router.service.daemon import Daemon

    daemons: list[Daemon] = []

    async def create(**overrides: object) -> Daemon:
        settings = make_settings(tmp_path, **{"journal": journal, **overrides})
        daemon = Daemon(settings, bundled_rules)
        daemons.append(daemon)  # closed after the test even when it fails to start
        await daemon.start()
        await daemon.sandbox.started()  # as `serve` is, before /readyz says 200
        return daemon

    yield create
    for daemon in daemons:
        await daemon.close()


async def submit(
    daemon,
    raw: bytes,
    *,
    sender: str = "teacher@school.example",  # type: ignore[no-untyped-def]
    recipients: tuple[str, ...] = ("prevent@lewisham.gov.uk",),
) -> str:
    """Send `raw` to a daemon's embedded SMTP inbox; returns the server's 250 reply text."""
    import aiosmtplib

    endpoint = daemon.settings.inbox_endpoint
    client = aiosmtplib.SMTP(hostname=endpoint.host, port=endpoint.port, start_tls=False)
    async with client:
        await client.mail(sender)  # "" sends the null reverse-path of a bounce
        for recipient in recipients:
            await client.rcpt(recipient)
        response = await client.data(raw)
    return response.message
