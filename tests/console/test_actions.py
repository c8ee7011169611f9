"""The console's admin actions in a real browser: reprocess, try a message; statistics."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.conftest import submit
from tests.console.conftest import SCREENSHOTS, assert_accessible, sign_in
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email

MET = "preventreferrals@met.pnn.police.uk"
SENDER = "teacher@school.example"
SUBJECT = "Prevent referral about a pupil"


def referral() -> bytes:
    """A complete Lewisham referral, as a school sends it."""
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(
        sender=SENDER,
        subject=SUBJECT,
        attachments=[("jane-testperson.pdf", pdf, "application/pdf")],
    )


def assert_nothing_personal(text: str) -> None:
    """No sender address, subject, file name or form value in a page."""
    assert SENDER not in text and SUBJECT not in text and "jane-testperson" not in text
    for value in complete_referral().values():
        if len(value) > 3:
            assert value not in text


@pytest.mark.slow
async def test_admin_reprocesses_a_quarantined_referral_and_the_forward_arrives(
    console_daemon: Any, browser: Any, smtp_capture: Any
) -> None:
    """A forward the relay refused for good quarantines its referral; an admin finds it in
    the list, confirms Reprocess, and the forward then arrives at the relay; the trail says
    who reprocessed it and shows no personal data."""
    relay = smtp_capture()
    relay.fail_with(550, f"<{MET}> no such user", at="RCPT", times=1, recipients={MET})
    daemon = await console_daemon(relay=relay.url)
    await submit(daemon, referral(), sender=SENDER)
    await relay.wait_for_async(1, timeout=20)  # the alert to review (the ack is held back)
    [row] = daemon.journal.query("SELECT state FROM messages")
    assert row["state"] == "quarantined"

    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "admin")
    await page.screenshot(path=str(SCREENSHOTS / "console-overview.png"), full_page=True)
    await page.get_by_role("link", name="1 set aside for a person").click()
    listing = await page.inner_text("main")
    assert "t•••@school.example" in listing
    assert_nothing_personal(listing)
    await assert_accessible(page)
    await page.locator("tbody a").first.click()
    await page.get_by_role("button", name="Reprocess").click()
    assert "Reprocess this referral?" in await page.inner_text("h1")
    await assert_accessible(page)
    await page.get_by_role("button", name="Yes, reprocess it").click()
    assert "is queued again" in await page.inner_text("main")

    arrived = await relay.wait_for_async(3, timeout=20)  # alert, then forward and ack
    assert any(MET in mail.rcpt_tos for mail in arrived[1:])
    await page.reload()
    trail = await page.inner_text("main")
    assert "reprocessed by it-admin@council.example (console): failed mail queued again" in trail
    assert trail.count("reprocessed by") == 1  # once, in the audit trail
    assert_nothing_personal(trail)
    await assert_accessible(page)
    await page.screenshot(path=str(SCREENSHOTS / "console-referral-trail.png"), full_page=True)


@pytest.mark.slow
async def test_admin_tries_a_message_and_nothing_is_stored_or_sent(
    console_daemon: Any, browser: Any, smtp_capture: Any, tmp_path: Any
) -> None:
    """An uploaded .eml is decided as `route` decides it (forward to the Met for Lewisham);
    nothing is stored or sent, and the dry run is recorded with who made it."""
    relay = smtp_capture()
    daemon = await console_daemon(relay=relay.url)
    eml = tmp_path / "try.eml"
    eml.write_bytes(referral())
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "admin")
    await page.goto(f"{url}/rules")
    await assert_accessible(page)
    await page.set_input_files("input[name=message]", str(eml))
    await page.get_by_role("button", name="Try it").click()
    assert "The router would decide: forward" in await page.inner_text("h1")
    explained = await page.inner_text("#explanation")
    assert f"to: {MET}" in explained and "area: lewisham" in explained
    await assert_accessible(page)
    assert daemon.journal.query("SELECT COUNT(*) AS n FROM messages")[0]["n"] == 0
    assert relay.messages == []
    await page.goto(f"{url}/rules")
    assert "dry run by it-admin@council.example (forward)" in await page.inner_text("main")


async def test_statistics_show_the_window_and_download_as_csv(
    console_daemon: Any, browser: Any, smtp_capture: Any
) -> None:
    """After a forwarded referral, the statistics page counts it (as <5) for Lewisham, the
    csv download says the same as `report --format csv`, the referrals list finds it by
    outcome and area, and no page shows personal data."""
    relay = smtp_capture()
    daemon = await console_daemon(relay=relay.url)
    await submit(daemon, referral(), sender=SENDER)
    await relay.wait_for_async(2, timeout=20)  # forward and acknowledgment
    url = daemon.settings.console_public_url
    page = await browser.new_page()
    await sign_in(page, url, "viewer")
    await page.goto(f"{url}/statistics")
    text = await page.inner_text("main")
    assert "lewisham" in text and "<5" in text
    assert_nothing_personal(text)
    await assert_accessible(page)
    await page.screenshot(path=str(SCREENSHOTS / "console-statistics.png"), full_page=True)
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download as CSV").click()
    download = await download_info.value
    rows = list(csv.reader(io.StringIO((await download.path()).read_text("utf-8"))))
    assert ["by_area", "lewisham", "forward", "<5"] in rows
    await page.goto(f"{url}/referrals")
    await page.select_option("#outcome", "incomplete")
    await page.get_by_role("button", name="Filter").click()
    assert "0 found." in await page.inner_text("main")
    await page.select_option("#outcome", "forward")
    await page.select_option("#area", "lewisham")
    await page.get_by_role("button", name="Filter").click()
    assert "1 found." in await page.inner_text("main")
    assert "t•••@school.example" in await page.inner_text("tbody")
