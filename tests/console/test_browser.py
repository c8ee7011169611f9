"""The console in a real browser (Debian's chromium) against a real OIDC provider."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import SCREENSHOTS, assert_accessible, sign_in


async def test_viewer_signs_in_and_sees_the_overview_without_admin_actions(
    console_daemon: Any, browser: Any
) -> None:
    """A member of the viewers' group signs in, sees each check in words, and is offered no
    Try a message form; every page passes axe-core."""
    daemon = await console_daemon()
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "viewer")
    assert page.url == f"{url}/"
    text = await page.inner_text("main")
    assert "Inbox connected" in text and "Journal writable" in text
    assert "coordinator@council.example (viewer)" in await page.inner_text("header")
    await assert_accessible(page)
    await page.goto(f"{url}/rules")
    assert "lewisham" in await page.inner_text("main")
    assert await page.locator("text=Try a message").count() == 0
    await assert_accessible(page)
