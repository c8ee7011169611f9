"""The console's fixtures: a daemon serving it, a real OIDC provider, Debian's chromium."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.servers.oidc import NODE_MODULES, OidcProvider
from tests.servers.smtp import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
# The README's screenshots: written to docs/images when CONSOLE_SCREENSHOTS=1 (so an
# ordinary run leaves the checkout clean), else to a temporary folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="console-screenshots-"))
)


@pytest.fixture
async def console_daemon(
    tmp_path: Path, bundled_rules: Any, oidc_provider: OidcProvider, console_port: int
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start in-process daemons serving the console (signed in through the test provider:
    group `prevent-team` are viewers, `router-admins` admins) with their deciding and
    delivering loops running; closed after the test."""
    import asyncio

    from router.service.daemon import Daemon

    daemons: list[Daemon] = []
    loops: list[asyncio.Task[None]] = []

    async def create(**overrides: object) -> Daemon:
        values: dict[str, object] = {
            "console": f"127.0.0.1:{console_port}",
            "console_issuer": oidc_provider.issuer,
            "console_client_id": oidc_provider.client_id,
            "console_client_secret": oidc_provider.client_secret,
            "console_groups": "prevent-team",
            "console_admins": "router-admins",
            "http": f"127.0.0.1:{free_port()}",
            **overrides,
        }
        daemon = Daemon(make_settings(tmp_path, **values), bundled_rules)
        daemons.append(daemon)
        await daemon.start()
        await daemon.sandbox.started()
        loops.append(daemon.start_pipeline())  # deciding and delivering, as `serve` runs them
        return daemon

    yield create
    for daemon in daemons:
        await daemon.close()
    for task in loops:
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium, headless, driven by Playwright (its own browser download is not
    available here)."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat before the browser starts)
        pytest.skip("needs Debian's chromium (installed by .ci/run)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 AA violations on the page as it is now."""
    await page.evaluate(AXE.read_text(encoding="utf-8"))
    found = await page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: 'tag', values:
        ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})).violations"""
    )
    return [{"id": item["id"], "nodes": [n["html"] for n in item["nodes"]][:3]} for item in found]


async def assert_accessible(page: Any) -> None:
    """No axe-core violation on the page."""
    violations = await axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1)


async def sign_in(page: Any, console_url: str, login: str) -> None:
    """Sign in through the provider's sign-in and consent pages as `login` (the provider
    asks for neither when it remembers the browser)."""
    await page.goto(f"{console_url}/sign-in")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    if await page.locator("input[name=login]").count():
        await page.fill("input[name=login]", login)
        await page.fill("input[name=password]", "any password")
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
    if "/interaction/" in page.url:  # the provider's consent page
        await page.click("button[type=submit]")
    await page.wait_for_load_state()
