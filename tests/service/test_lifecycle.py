"""The daemon as a real process: embedded default, SIGTERM, and SIGKILL at any moment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from router.decide.decider import MAX_INTERRUPTED_ATTEMPTS
from router.send.sender import SENDERS
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening.hostile import slow_pdf
from tests.mailfactory import build_email
from tests.servers.ports import free_port
from tests.servers.smtp import CaptureServer

MET = "preventreferrals@met.pnn.police.uk"


class RouterProcess:
    """`python -m router serve` in a subprocess with the given settings."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int) -> None:
        self.cwd, self.env, self.port = cwd, env, port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = cwd / "router.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "router", "serve"],
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)  # polling a port that is not open yet
        raise AssertionError("daemon did not start listening")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def terminate(self, timeout: float) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def listen_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection of the daemon can
    take it while the daemon is down between a kill and a restart (see tests.servers.ports)."""
    return free_port()


def _send(port: int, raw: bytes, attempts: int = 200) -> None:
    """Send like a real MTA: retry until the inbox says 250 (the daemon may be down)."""
    for _ in range(attempts):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail("teacher@school.example", ["prevent@lewisham.gov.uk"], raw)
                return
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the daemon is restarting; an MTA would queue and retry
    raise AssertionError("message never accepted")


def _referral(number: int, pdf: bytes | None = None) -> bytes:
    pdf = pdf or fillable_pdf(labelled(complete_referral()))
    return build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id=f"<referral-{number}@school.example>",
    )


@pytest.fixture
def router_process(tmp_path: Path, rules_dir: Path):  # type: ignore[no-untyped-def]
    processes: list[RouterProcess] = []

    def create(env: dict[str, str], port: int) -> RouterProcess:
        shutil.copytree(rules_dir, tmp_path / "rules", dirs_exist_ok=True)
        process = RouterProcess(tmp_path, env, port)
        processes.append(process)
        return process

    yield create
    for process in processes:
        process.stop()


def _relaying(  # type: ignore[no-untyped-def]
    router_process, tmp_path: Path, capture: CaptureServer, **settings: str
) -> RouterProcess:
    """A daemon on a free port relaying to `capture`, its state in tmp_path, no HTTP."""
    port = listen_port()
    return router_process(
        {
            "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
            "ROUTER_RELAY": capture.url,
            "ROUTER_HTTP": "",
            "ROUTER_STATE_DIR": str(tmp_path / "state"),
            **settings,
        },
        port,
    )


def test_embedded_default_and_sigterm(router_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With no settings, serve listens on 127.0.0.1:2525, writes to ./var/outbox, and a
    SIGTERM stops it cleanly within 10 seconds."""
    env = {k: "" for k in os.environ if k.startswith("ROUTER_")}
    env.pop("ROUTER_HTTP", None)
    router = router_process(env, 2525)
    router.start()
    # The README's try-out, as a newcomer would type it.
    subprocess.run([sys.executable, "-m", "router.sample", "--send", "127.0.0.1:2525"], check=True)
    outbox = tmp_path / "var" / "outbox" / "new"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(outbox.glob("*"))) < 2:
        time.sleep(0.05)  # polling a directory another process writes
    texts = [path.read_bytes() for path in outbox.iterdir()]
    assert len(texts) == 2
    assert any(MET.encode() in text for text in texts)
    started = time.monotonic()
    assert router.terminate(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in router.log.read_text()


@pytest.mark.slow
def test_sigkill_repeatedly_loses_nothing(router_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killing the daemon (SIGKILL) again and again while referrals flow in: every accepted
    referral is forwarded, and duplicates are bounded by the mails with the relay at each kill."""
    capture = CaptureServer().start()
    try:
        router = _relaying(router_process, tmp_path, capture, ROUTER_RETRY_BASE_SECONDS="0.05")
        port = router.port
        router.start()
        total, kills = 24, 0
        for number in range(total):
            sent_before = len(capture.messages)
            _send(port, _referral(number))
            if number % 4 == 3:
                # Alternate kill points: straight after a 250, and after some forwards left.
                if number % 8 == 7:
                    assert capture.wait_beyond(sent_before, timeout=30), "nothing was sent"
                router.kill()
                kills += 1
                router.start()
        forwards = _forwards_by_original(capture, total)
        expected = {f"<referral-{n}@school.example>" for n in range(total)}
        assert set(forwards) == expected, _what_happened(router.log)
        # SPEC's one window: a mail the relay took (250) that the journal had not yet
        # recorded as sent. Each kill can catch as many as were with the relay (SENDERS).
        duplicates = sum(count - 1 for count in forwards.values())
        assert duplicates <= kills * SENDERS
    finally:
        capture.stop()


def _what_happened(log: Path) -> str:
    """The daemon's log without its routine lines, for a failure's message."""
    routine = ('"event": "sent"', '"event": "received"', '"event": "decision"')
    lines = log.read_text().splitlines()
    return "\n".join(line for line in lines if not any(r in line for r in routine))[-6000:]


def _forwards_by_original(capture: CaptureServer, total: int) -> Counter[str]:
    deadline = time.monotonic() + 90
    while True:
        forwards: Counter[str] = Counter()
        messages = capture.messages
        for captured in messages:
            if MET in captured.rcpt_tos:
                references = str(captured.message["References"] or "").split()
                forwards.update(ref for ref in references if ref.startswith("<referral-"))
        if len(forwards) >= total or time.monotonic() > deadline:
            return forwards
        capture.wait_beyond(len(messages), timeout=max(0.1, deadline - time.monotonic()))


@pytest.mark.slow
def test_kills_while_a_message_is_in_the_worker_do_not_count_against_it(  # type: ignore[no-untyped-def]
    router_process, tmp_path: Path
) -> None:
    """The daemon SIGKILLed as many times as the crash-loop bound, each time while a message
    is in the analysis worker (a form that takes long to read): the worker cannot crash the
    daemon, so these kills are not the message's doing. At the next start it is decided as
    any form too slow to read is (for review, its original attached), not quarantined."""
    capture = CaptureServer().start()
    try:
        router = _relaying(
            router_process,
            tmp_path,
            capture,
            ROUTER_LOG_LEVEL="debug",
            ROUTER_PARSE_TIMEOUT_SECONDS="2",
        )
        port = router.port
        for kill in range(MAX_INTERRUPTED_ATTEMPTS):
            router.start()
            if kill == 0:
                _send(port, _referral(0, slow_pdf()))
            _wait_for_log(router.log, "analysing", count=kill + 1)
            router.kill()  # seconds before the worker could be done with it
        router.start()
        _wait_for_log(router.log, "decision", "quarantined", count=1)
        log = router.log.read_text()
        assert '"outcome": "needs_review"' in log
        assert '"event": "quarantined"' not in log
        [row] = _journal_rows(tmp_path / "state", "SELECT state, attempts FROM messages")
        assert row == ("done", 1) or row == ("decided", 1)
    finally:
        capture.stop()


def _journal_rows(state: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(state / "journal.sqlite3")) as db:
        return db.execute(sql).fetchall()


def _wait_for_log(log: Path, *events: str, count: int) -> None:
    """Until one of `events` is logged `count` times."""
    deadline = time.monotonic() + 60
    while all(log.read_text().count(f'"event": "{event}"') < count for event in events):
        assert time.monotonic() < deadline, f"{events} not logged {count} times"
        time.sleep(0.05)  # polling a file another process writes


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROUTER_INBOX": "ftp://example.org"}, "scheme must be one of"),
        ({"ROUTER_LOG_LEVEL": "loud"}, "ROUTER_LOG_LEVEL"),
        (
            {"ROUTER_INBOX": "imap://u@example.org/INBOX", "ROUTER_INBOX_PASSWORD": "pw"},
            "refusing plain-text IMAP",
        ),
        (
            {"ROUTER_RELAY": "smtp://127.0.0.1:25", "ROUTER_RELAY_CA_FILE": "/nonexistent/ca"},
            "relay CA file",
        ),
        ({"ROUTER_RULES_DIR": "/nonexistent/rules"}, "rules directory not found"),
    ],
)
def test_bad_settings_stop_at_start_with_a_clear_message(
    tmp_path: Path, rules_dir: Path, env: dict[str, str], message: str
) -> None:
    """Bad settings or rules: exit 2 with one readable line, never a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env={**os.environ, "ROUTER_RULES_DIR": str(rules_dir), "ROUTER_HTTP": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
