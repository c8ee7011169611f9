"""The console in a real browser (Debian's chromium) against a real OIDC provider."""

from __future__ import annotations

import time
from typing import Any

from tests.console.conftest import assert_accessible, sign_in


async def test_viewer_signs_in_and_sees_the_overview_without_admin_actions(
    console_daemon: Any, browser: Any
) -> None:
    """A member of the viewers' group signs in, sees each check in words, and is offered no
    Try a message form; every page passes axe-core, forbids framing, inline script and
    referrers, and the session cookie is HttpOnly, Secure and SameSite."""
    daemon = await console_daemon()
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await page.goto(f"{url}/sign-in")
    await assert_accessible(page)
    await sign_in(page, url, "viewer")
    assert page.url == f"{url}/"
    text = await page.inner_text("main")
    assert "Inbox connected" in text and "Journal writable" in text
    assert "coordinator@council.example (viewer)" in await page.inner_text("header")
    await assert_accessible(page)
    await page.goto(f"{url}/rules")
    rules = await page.inner_text("main")
    assert "lewisham" in rules and "preventreferrals@met.pnn.police.uk" in rules
    assert "nhs.net" in rules  # the referring sectors' domains
    assert await page.locator("text=Try a message").count() == 0
    await assert_accessible(page)
    headers = (await page.request.get(f"{url}/referrals")).headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    [cookie] = [c for c in await page.context.cookies(url) if c["name"] == "router_console"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"


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
    logged = capsys.readouterr().err  # logs go to standard error, as `serve` sets them
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
    await viewer.goto(f"{url}/referrals/PR-20260101-00000000-1")
    assert "Page not found" in await viewer.inner_text("h1")
    await assert_accessible(viewer)


async def test_session_past_its_idle_timeout_is_sent_back_to_sign_in(
    console_daemon: Any, browser: Any
) -> None:
    """A session unused for longer than the idle timeout is cleared and sent back to sign
    in, told why; one used within it goes on, for twelve hours at most."""
    daemon = await console_daemon(console_idle_minutes=90)
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "viewer")
    console = daemon.console.console
    console.clock = lambda: time.time() + 80 * 60  # within the ninety minutes
    await page.goto(f"{url}/referrals")
    assert page.url == f"{url}/referrals"
    console.clock = lambda: time.time() + 175 * 60  # ninety-five minutes after that use
    await page.goto(f"{url}/referrals")
    assert page.url == f"{url}/sign-in?expired=1"
    assert "signed out because you were inactive" in await page.inner_text("main")
    await assert_accessible(page)
    await page.goto(f"{url}/")
    assert page.url == f"{url}/sign-in"
    console.clock = time.time
    await sign_in(page, url, "viewer")  # however active, twelve hours is the most
    for hours in range(1, 14):
        console.clock = lambda hours=hours: time.time() + hours * 3600
        await page.goto(f"{url}/referrals")
        if page.url != f"{url}/referrals":
            break
    assert (hours, page.url) == (12, f"{url}/sign-in?expired=1")  # 11 hours still in


async def test_loopback_try_out_without_sign_in_says_why_a_router_is_not_ready(
    console_daemon: Any, browser: Any
) -> None:
    """With ROUTER_CONSOLE_AUTH=none on loopback the console opens without signing in, and
    a relay that refuses connections shows as "Relay not answering" with its reason."""
    from tests.servers.smtp import free_port

    daemon = await console_daemon(
        console_auth="none", relay=f"smtp://127.0.0.1:{free_port()}", max_attempts=1
    )
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await page.goto(f"{url}/")
    assert page.url == f"{url}/"
    text = await page.inner_text("main")
    assert "Not ready" in text
    [relay] = [line for line in text.splitlines() if line.startswith("Relay not answering")]
    assert relay.startswith("Relay not answering: Error connecting to 127.0.0.1")
    assert await page.locator("text=Sign out").count() == 0
    await assert_accessible(page)
