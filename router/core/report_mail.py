"""The monthly report as a mail: the html page as the body (with a text alternative), the
csv attached (ROUTER_REPORT_TO, `router.service.monthly`)."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from router.core.report import Report
from router.core.report_html import render_html
from router.core.report_render import render_csv, render_text


def compose_report_mail(report: Report, *, sender: str, recipients: Sequence[str]) -> bytes:
    """The mail of one report, marked automatic like all the router's own mail."""
    from datetime import UTC, datetime

    month = f"{report.start:%Y-%m}"
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Prevent referral statistics for {report.start:%B %Y}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(
        idstring="referral-router-report", domain=sender.rpartition("@")[2] or "localhost"
    )
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    message.add_attachment(
        render_csv(report).encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=f"prevent-referrals-{month}.csv",
    )
    return message.as_bytes()
