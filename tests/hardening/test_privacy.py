"""No personal data in logs or acknowledgments, and logging that survives stream changes."""

from __future__ import annotations

import io
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from router.core.forms.read import read_attachment
from router.logs import configure_logging
from router.models import AttachmentKind
from tests.conftest import ROOT, submit
from tests.formfactory import attachment, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import free_port

MET = "preventreferrals@met.pnn.police.uk"


def test_default_stream_follows_standard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging to the default stream writes to the current sys.stderr, even a replaced one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info", "json")
    structlog.get_logger("test").warning("first_line")
    monkeypatch.setattr(sys, "stderr", second)
    first.close()  # a closed earlier stream (a finished capture) must not break logging
    structlog.get_logger("test").warning("second_line")
    assert "second_line" in second.getvalue()
    configure_logging("info", "json")


TAG = "7f3a"
# One unique value per form field: none may reach a log line or an acknowledgment.
CANARIES: dict[str, str] = {
    "person_name": f"CANARY-person_name-{TAG}",
    "person_dob": "17/11/1987",
    "person_gender": f"CANARY-person_gender-{TAG}",
    "person_address": f"CANARY-person_address-{TAG}, London",
    "person_postcode": "SE13 7ZQ",
    "local_authority": f"CANARY-local_authority-{TAG}",
    "concern": f"CANARY-concern-{TAG} (a fictional concern for tests)",
    "referrer_name": f"CANARY-referrer_name-{TAG}",
    "referrer_organisation": f"CANARY-referrer_organisation-{TAG}",
    "referrer_email": f"canary-referrer_email-{TAG}@example.org",
    "referrer_phone": "07700 900731",
    "consent": f"CANARY-consent-{TAG}",
}
# Also planted outside the form: the subject, the body and the attachment's file name.
MESSAGE_CANARIES = {
    "subject": f"Referral for CANARY-subject-{TAG}",
    "body": f"Please see the form for CANARY-body-{TAG}.",
    "filename": f"CANARY-filename-{TAG}.pdf",
}
CASES = {
    "forward": {},
    "incomplete": {"concern": None},
    "needs_review": {"person_postcode": "LS1 4ZQ"},  # outside every area
}


def _forbidden(fields: dict[str, str]) -> list[str]:
    """Every spelling of every planted value that must not leak (lower case)."""
    values = [*fields.values(), *MESSAGE_CANARIES.values()]
    values += [value.replace(" ", "") for value in values]
    values += [f"CANARY-{name}-{TAG}" for name in [*CANARIES, *MESSAGE_CANARIES]]
    return sorted({value.lower() for value in values})


def _planted(case: str) -> tuple[dict[str, str], bytes]:
    """The canary fields for a case and the email carrying them."""
    fields = {k: v for k, v in CANARIES.items()}
    for name, value in CASES[case].items():
        if value is None:
            fields.pop(name)
        else:
            fields[name] = value
    pdf = fillable_pdf(labelled(fields))
    raw = build_email(
        subject=MESSAGE_CANARIES["subject"],
        body=MESSAGE_CANARIES["body"],
        attachments=[(MESSAGE_CANARIES["filename"], pdf, "application/pdf")],
    )
    return fields, raw


def _leaks(text: str, forbidden: list[str]) -> list[str]:
    lowered = text.lower()
    return [value for value in forbidden if value in lowered]


@pytest.mark.parametrize("level", ["debug", "info"])
async def test_no_canary_in_logs_or_acknowledgments(
    daemon_factory, smtp_capture, log_capture, level: str
) -> None:  # type: ignore[no-untyped-def]
    """Canaries in every form field, the subject, body and file name never reach a log
    line or an acknowledgment, for a forward, an incomplete and a needs_review; the
    forward carries them (so they were read)."""
    logs = log_capture(level)
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    forbidden: set[str] = set()
    for case in CASES:
        fields, raw = _planted(case)
        forbidden |= set(_forbidden(fields))
        await submit(daemon, raw)
    await daemon.run_once()
    captured = await relay.wait_for_async(6, timeout=10)
    outcomes = sorted(r["outcome"] for r in daemon.journal.query("SELECT outcome FROM decisions"))
    assert outcomes == sorted(CASES)
    assert '"event": "decision"' in logs.getvalue()
    assert _leaks(logs.getvalue(), sorted(forbidden)) == []
    acks = [c for c in captured if c.message["Auto-Submitted"] == "auto-replied"]
    assert len(acks) == 3
    for ack in acks:
        body = ack.message.get_body(preferencelist=("plain",)).get_content()
        assert _leaks(ack.data.decode("utf-8", "replace") + body, sorted(forbidden)) == []
    forward = next(c for c in captured if MET in c.rcpt_tos)
    [form] = [p for p in forward.message.iter_attachments() if p.get_filename() != "original.eml"]
    reading = read_attachment(
        attachment(form.get_payload(decode=True), AttachmentKind.PDF), daemon.rules.forms
    )
    assert reading.fields == CANARIES


@pytest.mark.slow
def test_no_canary_in_any_process_output(tmp_path: Path) -> None:
    """`python -m router serve` at debug level: neither the daemon nor its reader worker
    prints a planted value to standard output or standard error."""
    port = free_port()
    env = {
        **os.environ,
        "ROUTER_RULES_DIR": str(ROOT / "rules"),
        "ROUTER_STATE_DIR": str(tmp_path / "state"),
        "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
        "ROUTER_RELAY": f"maildir:{tmp_path / 'outbox'}",
        "ROUTER_HTTP": "",
        "ROUTER_LOG_LEVEL": "debug",
        "ROUTER_LOG_FORMAT": "json",
    }
    output = tmp_path / "output.log"
    forbidden: set[str] = set()
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=sink,
        )
        try:
            _until(lambda: _listening(port), process, "the daemon never listened")
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                for case in CASES:
                    fields, raw = _planted(case)
                    forbidden |= set(_forbidden(fields))
                    client.sendmail("teacher@school.example", ["prevent@lewisham.gov.uk"], raw)
            outbox = tmp_path / "outbox" / "new"
            _until(lambda: outbox.is_dir() and len(list(outbox.iterdir())) >= 6, process, "no mail")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    text = output.read_text(encoding="utf-8", errors="replace")
    assert '"level": "debug"' in text  # ROUTER_LOG_LEVEL was applied
    assert "Traceback" not in text
    assert _leaks(text, sorted(forbidden)) == []


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _until(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll a condition on the daemon's progress (bounded), failing early if it exits."""
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, "the daemon exited"
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


async def test_quarantine_logs_no_exception_text(
    daemon_factory, log_capture, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """An error whose text quotes the referral is logged by its class only when the message
    is quarantined (the full text goes to the journal and the review alert)."""
    logs = log_capture("debug")
    daemon = await daemon_factory()

    def broken_compose(*args: object, **kwargs: object) -> None:
        raise ValueError(f"cannot compose for {CANARIES['person_name']}")

    monkeypatch.setattr("router.decide.decider.compose_forward", broken_compose)
    await submit(daemon, _planted("forward")[1])
    for _ in range(3):  # a failing message is retried on later rounds, then set aside
        await daemon.run_once()
    [row] = daemon.journal.query("SELECT state, last_error FROM messages")
    assert row["state"] == "quarantined" and CANARIES["person_name"] in row["last_error"]
    assert '"event": "quarantined"' in logs.getvalue()
    assert CANARIES["person_name"].lower() not in logs.getvalue().lower()
