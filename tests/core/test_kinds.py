"""Each kind of mail is counted, timed and shown under its own name; review mail says what
it carries; an `ignored` decision logs which rule made it automatic."""

from __future__ import annotations

import io
import json
from typing import Any

from router.commands.status import format_status, read_status
from router.core.kinds import MAIL_KINDS
from router.logs import configure_logging
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.service.test_http import samples

MET = "preventreferrals@met.pnn.police.uk"
TEAM = "prevent@lewisham.gov.uk"
PERSONAL = ("teacher", "school.example", "Prevent referral please")


def _referral(**overrides: str | None) -> bytes:
    pdf = fillable_pdf(labelled(complete_referral(**overrides)))
    return build_email(attachments=[("referral.pdf", pdf, "application/pdf")])


def _sent(scraped: dict[Any, float], kind: str) -> float:
    return scraped[("router_mail_sent_total", frozenset({("kind", kind)}))]


async def test_series_exist_before_the_first_event(daemon_factory) -> None:
    """Before any mail, every kind of sent and failed mail, each reload result, the inbox's
    received count and each outcome of each area are at 0."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    scraped = await samples(daemon)
    for kind in MAIL_KINDS:
        assert _sent(scraped, kind) == 0
        assert scraped[("router_mail_failed_total", frozenset({("kind", kind)}))] == 0
    for result in ("ok", "invalid"):
        assert scraped[("router_rules_reloads_total", frozenset({("result", result)}))] == 0
    assert scraped[("router_messages_received_total", frozenset({("inbox", "smtp")}))] == 0
    for outcome in ("forward", "incomplete", "needs_review", "ignored"):
        for area in ("lewisham", "none"):
            labels = frozenset({("outcome", outcome), ("area", area)})
            assert scraped[("router_decisions_total", labels)] == 0


async def test_incomplete_notice_is_not_counted_as_a_forward(daemon_factory, smtp_capture) -> None:
    """The notice of an incomplete referral to the team is `incomplete_notice`, untimed, and
    `status` shows it and the acknowledgment as what was actually sent."""
    relay = smtp_capture()
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    await submit(daemon, _referral(person_dob=None))
    await daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    assert all(MET not in c.rcpt_tos for c in captured)

    scraped = await samples(daemon)
    assert _sent(scraped, "incomplete_notice") == 1
    assert _sent(scraped, "forward") == 0
    assert _sent(scraped, "ack") == 1
    assert scraped[("router_arrival_to_forward_seconds_count", frozenset())] == 0
    kinds = [row["kind"] for row in daemon.journal.query("SELECT kind FROM outbox")]
    assert sorted(kinds) == ["ack", "incomplete_notice"]

    report = read_status(daemon.journal)
    assert report.sent == {
        "forward": 0,
        "incomplete_notice": 1,
        "review": 0,
        "ack": 1,
        "alert": 0,
    }
    assert report.sent_more_than_once == 0
    text = format_status(report)
    assert "sent        forward 0, incomplete_notice 1, review 0, ack 1, alert 0\n" in text


async def test_forward_to_a_force_is_timed(daemon_factory, smtp_capture) -> None:
    """A forward to the police is `forward` and observed once by arrival-to-forward."""
    relay = smtp_capture()
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    await submit(daemon, _referral())
    await daemon.run_once()
    await relay.wait_for_async(2, timeout=10)
    scraped = await samples(daemon)
    assert _sent(scraped, "forward") == 1
    assert scraped[("router_arrival_to_forward_seconds_count", frozenset())] == 1


async def test_status_shows_a_duplicate_send(daemon_factory, smtp_capture) -> None:
    """A referral whose forward was sent twice is visible in `status`, not hidden in a total."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    await submit(daemon, _referral())
    await daemon.run_once()
    await relay.wait_for_async(2, timeout=10)
    journal = daemon.journal
    [row] = journal.query("SELECT * FROM outbox WHERE kind = 'forward'")
    columns = list(row.keys())
    copy = {**dict(row), "id": row["id"] + "-again"}
    with journal.transaction() as tx:
        tx.run(
            f"INSERT INTO outbox ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",  # noqa: S608
            [copy[c] for c in columns],
        )
    report = read_status(journal)
    assert report.sent["forward"] == 2
    assert report.sent_more_than_once == 1
    assert "(1 referral(s) with one kind sent more than once)" in format_status(report)


async def test_review_mail_without_attachment_says_what_is_attached(
    daemon_factory, smtp_capture
) -> None:
    """Review mail for an email with no attachment says it carries the original email only,
    and carries it as message/rfc822."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    raw = build_email(body="Prevent referral please, form to follow.", message_id="<o@s.example>")
    await submit(daemon, raw)
    await daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    [review] = [c.message for c in captured if c.message["X-Referral-Outcome"] == "needs_review"]
    text = review.get_body(preferencelist=("plain",)).get_content()
    assert "Attached: the original email only (it came with no attachment)." in text
    assert "referral form and any supporting documents" not in text
    [original] = list(review.iter_attachments())
    assert original.get_content_type() == "message/rfc822"
    assert original.get_content()["Message-ID"] == "<o@s.example>"
    kinds = [row["kind"] for row in daemon.journal.query("SELECT kind FROM outbox")]
    assert "review" in kinds and "forward" not in kinds


async def test_ignored_decision_logs_the_rule(daemon_factory) -> None:
    """Each automatic-mail rule is named in the `decision` log line, with no personal data."""
    daemon = await daemon_factory()
    cases = {
        "auto-submitted header": {"Auto-Submitted": "auto-replied"},
        "list mail": {"List-Id": "<prevent.lists.example>"},
        "precedence header": {"Precedence": "bulk"},
    }
    for headers in cases.values():
        await submit(daemon, build_email(subject="Prevent referral please", headers=headers))
    bounce = build_email(sender="mailer-daemon@mx.school.example", subject="Undelivered")
    await submit(daemon, bounce, sender="")
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)  # the real rendered lines
    try:
        await daemon.run_once()
    finally:
        configure_logging("info", "json")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    decisions = [line for line in lines if line["event"] == "decision"]
    assert {line["outcome"] for line in decisions} == {"ignored"}
    assert sorted(line["because"] for line in decisions) == sorted([*cases, "bounce"])
    assert not any(word in buffer.getvalue() for word in PERSONAL)
