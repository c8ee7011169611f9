"""`referral-router show` against a real `serve`: the audit trail of a forwarded, an
incomplete, a bounced and a reprocessed referral, in order and in plain words."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable

import pytest

from tests.commands.served import ROUTER_FROM, SUBJECT, Served, count, referral_email
from tests.mailfactory import dsn
from tests.service.test_lifecycle import MET

KENT_FORCE = "preventreferrals@kent.police.uk"
LEWISHAM_CC = "mashagency@lewisham.gov.uk, prevent@lewisham.gov.uk"


def _events(served: Served, monkeypatch: pytest.MonkeyPatch, wanted: str) -> list[dict]:  # type: ignore[type-arg]
    status, out = served.cli(monkeypatch, "show", wanted, "--json")
    assert status == 0
    trail = json.loads(out)
    assert trail["id"] == wanted.removeprefix("PR-")[:17]
    stamps = [event["at"] for event in trail["events"]]
    assert stamps == sorted(stamps)  # in time order
    return list(trail["events"])


def _names(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [event["event"] for event in events]


def test_show_tells_where_each_referral_went(
    served: Callable[[], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    """show gives, in order and in words, the received, decided, queued, sent, bounced,
    failed, quarantined and reprocessed events of four referrals; exit 1 for an unknown one."""
    router = served()
    forwarded = router.send(referral_email(1))
    incomplete = router.send(referral_email(2, person_dob=None))
    router.wait_until(
        monkeypatch,
        lambda j: count(j, "SELECT COUNT(*) AS n FROM outbox WHERE state = 'sent'") == 4,
    )
    # A delivery report comes back for the forward of the first referral.
    with router.journal(monkeypatch) as journal:
        [forward] = journal.query(
            "SELECT message_id_header FROM outbox WHERE kind = 'forward' AND message_id = ?",
            (forwarded,),
        )
    router.send(dsn(forward["message_id_header"], to=ROUTER_FROM), sender="")
    # A Kent referral whose force refuses it for good, then reprocessed once fixed.
    router.capture.fail_with(550, "5.1.1 no such user", at="RCPT", recipients={KENT_FORCE})
    kent = router.send(
        referral_email(
            3,
            person_postcode="CT1 1AA",
            local_authority="Kent",
            person_address="1 Example Road, Canterbury",
        )
    )
    router.wait_until(
        monkeypatch,
        lambda j: (
            count(j, "SELECT COUNT(*) AS n FROM events WHERE event = 'bounced'") == 1
            and count(
                j, "SELECT COUNT(*) AS n FROM messages WHERE id = ? AND state = 'quarantined'", kent
            )
            == 1
        ),
    )
    router.capture.reset()
    assert router.cli(monkeypatch, "reprocess", kent)[0] == 0
    # The daemon looks at the journal again within 30 s, or at once when mail arrives.
    router.send(referral_email(4, person_name=None))
    router.wait_until(
        monkeypatch,
        lambda j: (
            count(
                j, "SELECT COUNT(*) AS n FROM outbox WHERE message_id = ? AND state = 'sent'", kent
            )
            >= 2
        ),
    )

    events = _events(router, monkeypatch, f"PR-{forwarded}-1")
    assert _names(events)[:2] == ["received", "decided"]
    assert events[0]["inbox"] == ["prevent@lewisham.gov.uk"]
    assert events[1]["outcome"] == "forward" and events[1]["area"] == "lewisham"
    sent = [e for e in events if e["event"] == "sent"]
    assert [e["kind"] for e in sent] == ["forward", "ack"]
    assert sent[0]["recipients"][0] == MET and sent[0]["reply"].startswith("250 OK queued")
    assert _names(events)[-1] == "bounced" and events[-1]["kind"] == "forward"
    status, text = router.cli(monkeypatch, "show", f"PR-{forwarded}-1")
    assert status == 0
    assert f"forwarded to {MET}, cc {LEWISHAM_CC}, accepted by the relay at" in text
    assert "(reply 250 OK queued as" in text
    assert "BOUNCED" in text

    events = _events(router, monkeypatch, incomplete)
    assert events[1]["outcome"] == "incomplete" and events[1]["missing"] == ["person_dob"]
    kinds = [(e["event"], e.get("kind")) for e in events[2:]]
    assert ("sent", "incomplete_notice") in kinds and ("sent", "ack") in kinds
    text = router.cli(monkeypatch, "show", incomplete)[1]
    assert "missing fields: person_dob" in text
    assert "sent the incomplete referral to prevent@lewisham.gov.uk" in text

    events = _events(router, monkeypatch, kent)
    names = _names(events)
    failed = names.index("failed")
    assert names[failed:].index("quarantined") < names[failed:].index("reprocessed")
    assert events[failed]["reply"].startswith("550") and events[failed]["final"] is True
    reprocessed = next(e for e in events if e["event"] == "reprocessed")
    assert reprocessed["by"] == getpass.getuser()
    assert names[-1] == "sent" or "sent" in names[names.index("reprocessed") :]
    text = router.cli(monkeypatch, "show", kent)[1]
    assert f"FAILED for good: the referral to the police, to {KENT_FORCE}" in text
    assert f"reprocessed by {getpass.getuser()}" in text

    # Nothing in any trail is a form value, a subject or a file name.
    for wanted in (forwarded, incomplete, kent):
        shown = router.cli(monkeypatch, "show", wanted, "--json")[1]
        shown += router.cli(monkeypatch, "show", wanted)[1]
        for personal in (
            "Jane Testperson",
            "01/02/2001",
            "Example Road",
            "referral.pdf",
            SUBJECT,
            "Fictional concern",
            "Sam Referrer",
        ):
            assert personal not in shown

    assert router.cli(monkeypatch, "show", "PR-20200101-00000000-1")[0] == 1
    assert router.cli(monkeypatch, "show", "20200101-00000000")[0] == 1
