"""The console in a real browser (Debian's chromium) against a real OIDC provider."""

from __future__ import annotations

import time
from typing import Any

from tests.console.conftest import assert_accessible, sign_in


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
    captured = capsys.readouterr()  # stdout by default, stderr once a command set logging up
    logged = captured.out + captured.err
    assert "console_denied" in logged and "someone@elsewhere.example" in logged


async def test_post_without_csrf_token_is_refused_and_viewer_cannot_act(
    console_daemon: Any, browser: Any
) -> None:
    """A POST without the session's CSRF token is refused (403) even for an admin, and a
    viewer's POST to an admin action is refused whatever it carries."""
    daemon = await console_daemon()
    url = daemon.settings.console_public_url
    admin = await browser.new_page()
    await sign_in(admin, url, "admin")
    answer = await admin.request.post(f"{url}/rules/try", multipart={"message": "x"})
    assert answer.status == 403
    answer = await admin.request.post(f"{url}/sign-out", form={"csrf_token": "forged"})
    assert answer.status == 403
    viewer = await (await browser.new_context()).new_page()
    await sign_in(viewer, url, "viewer")
    await viewer.goto(f"{url}/rules")
    assert await viewer.locator("input[name=message]").count() == 0
    answer = await viewer.request.post(f"{url}/rules/try", multipart={"message": "x"})
    assert answer.status == 403
    answer = await viewer.request.get(f"{url}/referrals/PR-20260101-00000000-1/reprocess")
    assert answer.status == 403


async def test_session_past_its_idle_timeout_is_sent_back_to_sign_in(
    console_daemon: Any, browser: Any
) -> None:
    """A session unused for longer than the idle timeout is cleared and sent back to sign
    in, told why; one used within it goes on."""
    daemon = await console_daemon(console_idle_minutes=5)
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "viewer")
    console = daemon.console.console
    console.clock = lambda: time.time() + 4 * 60  # within the five minutes
    await page.goto(f"{url}/referrals")
    assert page.url == f"{url}/referrals"
    console.clock = lambda: time.time() + 10 * 60  # five minutes after that last use
    await page.goto(f"{url}/referrals")
    assert page.url == f"{url}/sign-in?expired=1"
    assert "signed out because you were inactive" in await page.inner_text("main")
    await assert_accessible(page)
    await page.goto(f"{url}/")
    assert page.url == f"{url}/sign-in"


async def test_pages_carry_the_security_headers(console_daemon: Any, browser: Any) -> None:
    """Every page forbids framing, inline script and referrers; the session cookie is
    HttpOnly, Secure and SameSite."""
    daemon = await console_daemon()
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "viewer")
    answer = await page.request.get(f"{url}/referrals")
    headers = answer.headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    [cookie] = [c for c in await page.context.cookies(url) if c["name"] == "router_console"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
