"""The monthly report mail (ROUTER_REPORT_TO): sent once on the first day of the month by
one of several routers sharing a PostgreSQL journal, and not again after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.core.rules.model import Rules
from router.service.daemon import Daemon
from tests.commands.served import referral_email
from tests.conftest import make_settings, submit
from tests.servers.smtp import CaptureServer

BOARD = ("board@council.example", "chair@council.example")


def _first_of_next_month() -> tuple[float, str]:
    """A clock on the 1st of next month at 09:00 UTC, and this month as YYYY-MM."""
    now = datetime.now(UTC)
    first = (now.replace(day=28) + timedelta(days=4)).replace(day=1, hour=9, minute=0)
    return first.timestamp(), f"{now:%Y-%m}"


async def test_the_monthly_report_is_mailed_once_by_one_of_two_nodes(
    tmp_path: Path,
    postgres_url: str,
    bundled_rules: Rules,
    smtp_capture: Callable[..., CaptureServer],
) -> None:
    """Two routers on one journal on the 1st: one mails last month's report (html body,
    csv attached, counts suppressed) to every address; the other, and the first one after a
    restart, do not mail it again."""
    relay = smtp_capture()
    moment, month = _first_of_next_month()
    daemons: list[Daemon] = []

    async def node(name: str) -> Daemon:
        settings = make_settings(
            tmp_path / name,
            journal=postgres_url,
            node_name=name,
            relay=relay.url,
            report_to=", ".join(BOARD),
        )
        daemon = Daemon(settings, bundled_rules, clock=lambda: moment)
        daemons.append(daemon)
        await daemon.start()
        return daemon

    try:
        first, second = await node("node-a"), await node("node-b")
        await submit(first, referral_email(1))
        await first.run_once()
        sent = len(relay.messages)
        results = await asyncio.gather(first.monthly.run_once(), second.monthly.run_once())
        assert sorted(results) == [False, True]
        [mail] = relay.wait_for(sent + 1, timeout=10)[sent:]
        assert set(mail.rcpt_tos) == set(BOARD)
        message = mail.message
        assert message["Auto-Submitted"] == "auto-generated"
        assert month in str(message["Subject"]) or "statistics" in str(message["Subject"])
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "<svg" in html and "<script" not in html
        [attached] = list(message.iter_attachments())
        assert attached.get_filename() == f"prevent-referrals-{month}.csv"
        assert "by_area,lewisham,forward,<5" in attached.get_content()
        assert "Jane Testperson" not in mail.data.decode(errors="replace")

        # Housekeeping on both nodes, and a restart of the first: nothing more is sent.
        await first.close()
        daemons.remove(first)
        again = await node("node-a")
        assert not await again.monthly.run_once()
        assert not await second.monthly.run_once()
        [row] = again.journal.query("SELECT month, sent_at, reply FROM report_mailings")
        assert row["month"] == month and row["reply"].startswith("250")
        assert len(relay.messages) == sent + 1
    finally:
        for daemon in daemons:
            await daemon.close()


async def test_no_report_without_recipients_or_after_the_first_week(
    tmp_path: Path, bundled_rules: Rules, smtp_capture: Callable[..., CaptureServer]
) -> None:
    """Without ROUTER_REPORT_TO nothing is mailed; with it, a router started on the 8th
    sends no report of the month before (only the first days of a month catch up)."""
    relay = smtp_capture()
    moment, _ = _first_of_next_month()
    for report_to, clock in (("", moment), (BOARD[0], moment + 7 * 86400)):
        settings = make_settings(tmp_path / str(clock), relay=relay.url, report_to=report_to)
        daemon = Daemon(settings, bundled_rules, clock=lambda clock=clock: clock)  # type: ignore[misc]
        try:
            assert daemon.monthly.due_month() is None
            assert not await daemon.monthly.run_once()
        finally:
            await daemon.close()
    assert relay.messages == []
