"""`referral-router report` against a real `serve`: referrals of known ages, genders,
sectors and areas in through the SMTP inbox, the counts out in every format, nothing
personal in any of them, and the same numbers after the retention purge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from tests.commands.served import SUBJECT, Served, count, referral_email
from tests.mailfactory import build_email

# Each referral: (sender, changed form fields); today is the day of referral.
REFERRALS = [
    # Lewisham, 14, female, a school: forward
    (
        "teacher@school.example",
        {"person_dob": "01/01/{y14}", "referrer_email": "head@stmarys.lewisham.sch.uk"},
    ),
    # Lewisham, 35, male, the NHS: forward
    (
        "gp@surgery.example",
        {"person_dob": "15/06/{y35}", "person_gender": "Male", "referrer_email": "dr.who@nhs.net"},
    ),
    # Kent, 16 today, a gender the form writes its own way, the police: forward
    (
        "pc@kent.police.uk",
        {
            "person_dob": "{today16}",
            "person_gender": "Non-binary",
            "person_postcode": "CT1 1AA",
            "local_authority": "Kent",
            "person_address": "1 Example Road, Canterbury",
            "referrer_email": "pc.plod@kent.police.uk",
        },
    ),
    # Lewisham, 8, no gender, no referrer email (the sender's school counts), no concern: incomplete
    (
        "head@oakfield.sch.uk",
        {"person_dob": "{iso8}", "person_gender": None, "referrer_email": None, "concern": None},
    ),
    # Coventry, 70, probation: forward
    (
        "officer@justice.gov.uk",
        {
            "person_dob": "3 March {y70}",
            "person_postcode": "CV1 2AA",
            "local_authority": "Coventry",
            "person_address": "2 Example Street, Coventry",
            "referrer_email": "officer@justice.gov.uk",
        },
    ),
]
PERSONAL = [
    "Jane Testperson",
    "Example Road",
    "Example Street",
    "Fictional concern",
    "Sam Referrer",
    "stmarys",
    "dr.who",
    "pc.plod",
    "oakfield",
    "officer@",
    "referral.pdf",
    SUBJECT,
]


def _fields(template: dict[str, str | None]) -> dict[str, str | None]:
    today = datetime.now(UTC).date()
    values = {
        "y14": str(today.year - 14 - (1 if (today.month, today.day) < (1, 1) else 0)),
        "y35": str(today.year - 35 - (1 if (today.month, today.day) < (6, 15) else 0)),
        "today16": today.replace(year=today.year - 16).strftime("%d/%m/%Y"),
        "iso8": today.replace(year=today.year - 8, day=1).isoformat(),
        "y70": str(today.year - 70 - (1 if (today.month, today.day) < (3, 3) else 0)),
    }
    return {k: None if v is None else v.format(**values) for k, v in template.items()}


EXACT = {
    "total": 6,
    "by_area": {
        "coventry": {"forward": 1, "incomplete": 0, "needs_review": 0, "ignored": 0},
        "kent-and-medway": {"forward": 1, "incomplete": 0, "needs_review": 0, "ignored": 0},
        "kingston": {"forward": 0, "incomplete": 0, "needs_review": 0, "ignored": 0},
        "lewisham": {"forward": 2, "incomplete": 1, "needs_review": 1, "ignored": 0},
        "none": {"forward": 0, "incomplete": 0, "needs_review": 0, "ignored": 0},
    },
    "by_age": {
        "10 or under": 1,
        "11 to 15": 1,
        "16 to 17": 1,
        "18 to 20": 0,
        "21 to 30": 0,
        "31 to 40": 1,
        "41 to 50": 0,
        "51 to 60": 0,
        "61 and over": 1,
        "unknown": 1,
    },
    "by_gender": {"male": 1, "female": 2, "other": 1, "unknown": 2},
    "by_sector": {
        "education": 2,
        "health": 1,
        "local authority": 0,
        "police": 1,
        "probation and prisons": 1,
        "community": 0,
        "other": 1,
        "unknown": 0,
    },
}


def _suppressed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _suppressed(v) for k, v in value.items()}
    return "<5" if isinstance(value, int) and 1 <= value <= 4 else value


class _Page(HTMLParser):
    """Every tag and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.loads: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.svgs += tag == "svg"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "data", "action") and not (
                value or ""
            ).startswith("#"):
                self.loads.append(f"{tag} {name}={value}")
            if name == "style" and "url(" in (value or ""):
                self.loads.append(f"{tag} style={value}")


def _report(router: Served, monkeypatch: pytest.MonkeyPatch, *extra: str) -> str:
    day = datetime.now(UTC).date().isoformat()
    status, out = router.cli(monkeypatch, "report", "--from", day, "--to", day, *extra)
    assert status == 0
    return out


def _check_html(html: str) -> None:
    page = _Page()
    page.feed(html)
    assert page.svgs >= 5  # a chart per breakdown, inline
    assert page.loads == []
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    assert "@import" not in html and "url(http" not in html


def test_report_counts_what_came_in_and_keeps_it_after_the_purge(
    served: Callable[[], Served], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """report json equals the known counts (exact and suppressed); no format holds a
    personal string; the html is self-contained; the purge changes no number and show
    still answers without the referrer's address."""
    router = served()
    ids = [
        router.send(referral_email(n, sender=sender, **_fields(fields)), sender=sender)
        for n, (sender, fields) in enumerate(REFERRALS)
    ]
    no_form = build_email(sender="someone@example.com", body="Please call me about a worry.")
    ids.append(router.send(no_form, sender="someone@example.com"))
    router.wait_until(
        monkeypatch,
        lambda j: count(j, "SELECT COUNT(*) AS n FROM messages WHERE state = 'done'") == len(ids),
    )
    exact = json.loads(_report(router, monkeypatch, "--format", "json", "--exact"))
    for key, value in EXACT.items():
        assert exact[key] == value, key
    assert sum(exact["by_month"].values()) == 6
    with router.journal(monkeypatch) as journal:
        waits = sorted(
            row["w"]
            for row in journal.query(
                "SELECT o.sent_at - m.received_at AS w FROM outbox AS o JOIN messages AS m"
                " ON m.id = o.message_id WHERE o.kind = 'forward'"
            )
        )
    timing = exact["time_to_forward"]
    assert len(waits) == 4
    assert timing["median_seconds"] == pytest.approx((waits[1] + waits[2]) / 2, abs=0.01)
    assert timing["p90_seconds"] == pytest.approx(waits[3], abs=0.01)
    suppressed = json.loads(_report(router, monkeypatch, "--format", "json"))
    assert suppressed == {**_suppressed(exact), "time_to_forward": timing}
    assert suppressed["total"] == 6 and suppressed["by_gender"]["female"] == "<5"

    outputs = {
        form: _report(router, monkeypatch, "--format", form) for form in ("text", "csv", "html")
    }
    outputs["exact-html"] = _report(router, monkeypatch, "--format", "html", "--exact")
    out_file = tmp_path / "report.csv"
    _report(router, monkeypatch, "--format", "csv", "--out", str(out_file))
    assert out_file.read_text() == outputs["csv"]
    assert "by_area,lewisham,incomplete,<5" in outputs["csv"]
    for form, text in outputs.items():
        for personal in PERSONAL:
            assert personal not in text, (form, personal)
    _check_html(outputs["html"])
    _check_html(outputs["exact-html"])
    show_before = router.cli(monkeypatch, "show", ids[0])[1]
    assert "teacher@school.example" in show_before

    # The retention purge, as the daemon runs it once ROUTER_RETENTION_DAYS have passed.
    with router.journal(monkeypatch) as journal:
        assert journal.purge(time.time() + 1) == len(ids)
    assert json.loads(_report(router, monkeypatch, "--format", "json", "--exact")) == exact
    status, shown = router.cli(monkeypatch, "show", ids[0], "--json")
    assert status == 0
    events = json.loads(shown)["events"]
    assert events[-1]["event"] == "purged"
    assert "teacher@school.example" not in shown and "ack_to" not in shown
    assert "preventreferrals@met.pnn.police.uk" in shown  # where it went stays on record
    assert "teacher@school.example" not in router.cli(monkeypatch, "show", ids[0])[1]
