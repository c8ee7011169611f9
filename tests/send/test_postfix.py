"""`serve` between two real Postfix instances: one in front of the listener, one as the relay
with STARTTLS, SASL AUTH (Dovecot), `reject_non_fqdn_helo_hostname` and a 10 MB limit."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import sqlite3
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.hardening.serve import FORM, ServeProcess, referral, send_until_stored
from tests.mailfactory import build_email
from tests.servers.dovecot import Dovecot
from tests.servers.postfix import Postfix
from tests.servers.smtp import free_port
from tests.service.test_lifecycle import listen_port

MET = "preventreferrals@met.pnn.police.uk"
LEWISHAM = "prevent@lewisham.gov.uk"
REFERRER = "teacher@school.example"
FROM = "referrals@router.example"
REVIEW = "review@router.example"
HELO = "router.test.example"

Relay = tuple[Postfix, Dovecot]

# Real servers and seconds each; one relay per module (and per worker).
pytestmark = pytest.mark.slow


def _wait_for(predicate: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # mail moves through real servers: nothing to wait on but them


@pytest.fixture
def router_factory(
    tmp_path: Path, rules_dir: Path, postfix_relay: Relay
) -> Iterator[Callable[..., ServeProcess]]:
    """Make `serve` processes sending through the module's Postfix relay (started by the
    test); the relay's refusal lists are cleared afterwards."""
    relay, dovecot = postfix_relay
    shutil.copytree(rules_dir, tmp_path / "rules", dirs_exist_ok=True)
    routers: list[ServeProcess] = []

    def make(**env: str) -> ServeProcess:
        port, http_port = listen_port(), free_port()
        settings = {
            "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
            "ROUTER_RELAY": f"smtp://127.0.0.1:{relay.port}",
            "ROUTER_RELAY_USER": dovecot.user,
            "ROUTER_RELAY_PASSWORD": dovecot.password,
            "ROUTER_RELAY_CA_FILE": str(relay.ca_file),
            "ROUTER_HELO_NAME": HELO,
            "ROUTER_FROM_ADDRESS": FROM,
            "ROUTER_REVIEW_ADDRESS": REVIEW,
            "ROUTER_HTTP": f"127.0.0.1:{http_port}",
            "ROUTER_STATE_DIR": str(tmp_path / f"state-{len(routers)}"),
            "ROUTER_RULES_DIR": str(tmp_path / "rules"),
            "ROUTER_RETRY_BASE_SECONDS": "0.5",
            "ROUTER_RETRY_MAX_SECONDS": "1",
            **env,
        }
        router = ServeProcess(tmp_path / f"run-{len(routers)}", settings, port, http_port)
        router.cwd.mkdir()
        routers.append(router)
        return router

    try:
        yield make
    finally:
        for router in routers:
            router.stop()
        relay.refuse_recipients()
        relay.refuse_senders()


def _references(messages: list[EmailMessage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        for ref in str(message["References"] or "").split():
            if ref.startswith("<referral-"):
                counts[ref] = counts.get(ref, 0) + 1
    return counts


def _readyz(router: ServeProcess) -> tuple[int, dict[str, object]]:
    status, body, _ = router.get("/readyz")
    return status, json.loads(body)


def _mail_states(router: ServeProcess) -> dict[str, int]:
    with sqlite3.connect(Path(router.env["ROUTER_STATE_DIR"]) / "journal.sqlite3") as db:
        rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
    return dict(rows)


def test_referrals_through_postfix_both_sides_are_forwarded_once(
    router_factory: Callable[..., ServeProcess], postfix_relay: Relay
) -> None:
    """20 referrals sent to a Postfix in front of the listener reach the police mailbox
    behind the Postfix relay once each, the referrer gets one acknowledgment each, and the
    relay's HELO policy passes with ROUTER_HELO_NAME."""
    relay, _ = postfix_relay
    before_met, before_ack = len(relay.mailbox(MET)), len(relay.mailbox(REFERRER))
    log_before = len(relay.log())  # the relay is shared: other tests' sessions are in its log
    router = router_factory()
    router.start()
    front = Postfix("front", downstream=router.port).start()
    try:
        for number in range(20):
            front.send(referral(number + 1000), sender=REFERRER, recipients=[LEWISHAM])
        forwards = relay.wait_for(MET, before_met + 20, timeout=120)[before_met:]
        acks = relay.wait_for(REFERRER, before_ack + 20, timeout=60)[before_ack:]
    finally:
        front.close()
    counts = _references(forwards)
    assert counts == {f"<referral-{n + 1000}@school.example>": 1 for n in range(20)}
    assert len(acks) == 20
    assert "Helo command rejected" not in relay.log()[log_before:]
    status, report = _readyz(router)
    assert status == 200, report


def test_a_helo_name_the_relay_refuses_keeps_mail_queued(
    router_factory: Callable[..., ServeProcess],
) -> None:
    """EHLO localhost refused by the relay's HELO policy (504 at RCPT): the referral's mail
    stays queued (nothing quarantined, nothing failed), /readyz is 503 quoting the code, and
    the refusals are counted."""
    router = router_factory(ROUTER_HELO_NAME="localhost")
    router.start()
    send_until_stored(router.port, referral(2000), sender=REFERRER, deadline=time.monotonic() + 60)
    _wait_for(lambda: router.metric("router_relay_refusals_total") >= 2, 60, "refusals")
    status, report = _readyz(router)
    relay_check = report["checks"]["relay"]  # type: ignore[index]
    assert status == 503
    assert relay_check["reply_code"] == 504 or relay_check["probe_reply_code"] == 504
    states = _mail_states(router)
    assert set(states) <= {"pending"}, states
    assert router.metric("router_quarantine_size") == 0
    assert router.metric("router_mail_failed_total", kind="forward") == 0


def test_a_sender_refused_for_a_while_waits_then_goes_with_one_alert(
    router_factory: Callable[..., ServeProcess], postfix_relay: Relay
) -> None:
    """While the relay refuses the router's sender for every recipient, mail waits and
    /readyz fails quoting the code; once it accepts, every mail goes once and one alert
    tells the review address what happened."""
    relay, _ = postfix_relay
    before_met, before_review = len(relay.mailbox(MET)), len(relay.mailbox(REVIEW))
    relay.refuse_senders(FROM)
    router = router_factory()
    router.start()
    send_until_stored(router.port, referral(3000), sender=REFERRER, deadline=time.monotonic() + 60)
    _wait_for(lambda: router.metric("router_relay_refusals_total") >= 1, 60, "a refusal")
    status, report = _readyz(router)
    assert status == 503, report
    relay_check = report["checks"]["relay"]  # type: ignore[index]
    assert relay_check["reply_code"] == 554 or relay_check["probe_reply_code"] == 554
    assert router.metric("router_mail_failed_total", kind="forward") == 0

    relay.refuse_senders()
    forwards = relay.wait_for(MET, before_met + 1, timeout=60)[before_met:]
    assert _references(forwards) == {"<referral-3000@school.example>": 1}
    alerts = relay.wait_for(REVIEW, before_review + 1, timeout=60)[before_review:]
    assert len(alerts) == 1
    assert "accepts it again" in str(alerts[0]["Subject"])
    body = alerts[0].get_body(("plain",))
    assert body is not None and "554" in body.get_content()
    assert not list(alerts[0].iter_attachments())
    _wait_for(lambda: _readyz(router)[0] == 200, 30, "/readyz to recover")


def test_a_refused_recipient_fails_that_mail_and_alerts_the_review_address(
    router_factory: Callable[..., ServeProcess], postfix_relay: Relay
) -> None:
    """The relay refuses the police address (554 at RCPT) but accepts the router: the
    forward fails for good, its referral is quarantined, and an alert with the reference and
    the reply code and no attachment reaches the review address."""
    relay, _ = postfix_relay
    before_review = len(relay.mailbox(REVIEW))
    relay.refuse_recipients(MET)
    router = router_factory()
    router.start()
    send_until_stored(router.port, referral(4000), sender=REFERRER, deadline=time.monotonic() + 60)
    alerts = relay.wait_for(REVIEW, before_review + 1, timeout=60)[before_review:]
    [alert] = [a for a in alerts if "NOT delivered" in str(a["Subject"])]
    text = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "554" in text and "referral-router show PR-" in text
    assert not list(alert.iter_attachments())
    assert router.metric("router_relay_refusals_total") == 0


def _send_to_listener(port: int, raw: bytes, recipient: str) -> None:
    """One message to the router's listener, as a mail server would hand it over."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("school.example.org")
        client.sendmail(REFERRER, [recipient], raw)


def test_a_large_unreadable_referral_reaches_the_review_address_through_10_mb(
    router_factory: Callable[..., ServeProcess], postfix_relay: Relay
) -> None:
    """A 7.5 MB referral whose 5.5 MB attachment cannot be read goes for review through the
    10 MB relay: the review mail carries the original once (each document once) and fits."""
    relay, _ = postfix_relay
    before = len(relay.mailbox(REVIEW))
    unreadable = b"%PDF-1.4\n" + os.urandom(5_500_000)
    raw = build_email(
        to=("referrals@council.example",),  # no area: the review address
        attachments=[("referral.pdf", unreadable, "application/pdf")],
        message_id="<large-1@school.example>",
    )
    assert len(raw) > 7_500_000
    router = router_factory()
    router.start()
    _send_to_listener(router.port, raw, "referrals@council.example")
    [review] = relay.wait_for(REVIEW, before + 1, timeout=60)[before:]
    assert "REVIEW" in str(review["Subject"])
    [original] = list(review.iter_attachments())  # the original, which holds the document
    assert original.get_content_type() == "message/rfc822"
    inner = original.get_content()
    [document] = list(inner.iter_attachments())
    assert document.get_content() == unreadable
    assert router.metric("router_mail_failed_total", kind="review") == 0


def test_a_forward_too_large_for_the_relay_leaves_the_original_out_and_says_so(
    router_factory: Callable[..., ServeProcess], postfix_relay: Relay
) -> None:
    """A referral whose documents fit the relay's SIZE but not twice (with the original
    email beside them) is forwarded with the documents byte for byte, without the original,
    and its text says so and names the reference to look up."""
    relay, _ = postfix_relay
    before = len(relay.mailbox(MET))
    photo = b"\xff\xd8\xff\xe0" + os.urandom(4_000_000)
    raw = build_email(
        attachments=[("referral.pdf", FORM, "application/pdf"), ("photo.jpg", photo, "image/jpeg")],
        message_id="<large-2@school.example>",
    )
    router = router_factory()
    router.start()
    _send_to_listener(router.port, raw, LEWISHAM)
    [forward] = relay.wait_for(MET, before + 1, timeout=60)[before:]
    files = {part.get_filename(): part.get_content() for part in forward.iter_attachments()}
    assert files == {"referral.pdf": FORM, "photo.jpg": photo}
    text = forward.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "size limit" in text and "referral-router show PR-" in text
