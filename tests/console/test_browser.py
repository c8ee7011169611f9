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


async def test_someone_outside_the_allowed_groups_is_refused(
    console_daemon: Any, browser: Any, capsys: Any
) -> None:
    """A signed-in account in no allowed group or list gets the refusal page, no session,
    and the refusal is logged with who it was."""
    daemon = await console_daemon()
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "outsider")
    assert "You cannot use this console" in await page.inner_text("main")
    await assert_accessible(page)
    await page.goto(f"{url}/referrals")
    assert page.url == f"{url}/sign-in"
    logged = capsys.readouterr().out
    assert "console_denied" in logged and "someone@elsewhere.example" in logged
