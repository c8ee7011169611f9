"""A real `referral-router serve` for the accountability tests: referrals in through its SMTP
inbox, mail out to a capture relay, and the admin commands (`show`, `report`, `reprocess`)
run against its journal with the same settings, as an operator would."""

from __future__ import annotations

import contextlib
import io
import shutil
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from router.commands.journal_access import open_journal
from router.journal.protocol import Journal
from router.logs import configure_logging
from tests.conftest import ROOT
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import CaptureServer
from tests.service.test_lifecycle import RouterProcess, listen_port

ROUTER_FROM = "referrals@router.example"
SUBJECT = "Worried about a pupil, case"  # personal enough: never in any output


def referral_email(
    number: int, *, sender: str = "teacher@school.example", **fields: str | None
) -> bytes:
    """A referral form (the factory's complete one, with `fields` changed) in an email whose
    Message-ID names its number."""
    pdf = fillable_pdf(labelled(complete_referral(**fields)))
    return build_email(
        sender=sender,
        subject=f"{SUBJECT} {number}",
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id=f"<referral-{number}@school.example>",
    )


class Served:
    """One `serve` process, its capture relay and its settings (as ROUTER_* variables)."""

    def __init__(self, tmp_path: Path, journal: str, capture: CaptureServer) -> None:
        self.capture = capture
        self.port = listen_port()
        rules = tmp_path / "rules"
        shutil.copytree(ROOT / "rules", rules, dirs_exist_ok=True)
        self.env = {
            "ROUTER_INBOX": f"smtp://127.0.0.1:{self.port}",
            "ROUTER_RELAY": capture.url,
            "ROUTER_STATE_DIR": str(tmp_path / "state"),
            "ROUTER_RULES_DIR": str(rules),
            "ROUTER_JOURNAL": journal,
            "ROUTER_HTTP": "",
            "ROUTER_NODE_NAME": "node-a",  # restarted as itself: takes its claims back at once
            "ROUTER_FROM_ADDRESS": ROUTER_FROM,
            "ROUTER_REVIEW_ADDRESS": "review@router.example",
            "ROUTER_RETRY_BASE_SECONDS": "0.05",
            "ROUTER_RETRY_MAX_SECONDS": "0.2",
        }
        self.process = RouterProcess(tmp_path, self.env, self.port)

    def send(self, raw: bytes, *, sender: str = "teacher@school.example") -> str:
        """Hand a message to the inbox; returns the journal id from its 250 reply."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.ehlo()
            client.mail(sender)
            client.rcpt("prevent@lewisham.gov.uk")
            code, reply = client.data(raw)
        assert code == 250, reply
        return reply.decode().split("Stored as ")[1].split()[0].strip(".")

    def cli(self, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
        """Run `referral-router ARGS` with the daemon's settings: (status, standard output)."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                status = main(list(args))
        finally:
            # `main` sets the log level for a command; later tests get the default back.
            configure_logging("info", "json")
        return status, out.getvalue()

    @contextlib.contextmanager
    def journal(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
        """The daemon's journal, opened as the admin commands open it."""
        from router.cli import load_settings

        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        opened = open_journal(load_settings())
        try:
            yield opened
        finally:
            opened.close()

    def wait_until(
        self, monkeypatch: pytest.MonkeyPatch, done: Callable[[Journal], Any], timeout: float = 30
    ) -> None:
        """Wait until `done(journal)` is true (the daemon works in another process)."""
        deadline = time.monotonic() + timeout
        with self.journal(monkeypatch) as journal:
            while not done(journal):
                assert time.monotonic() < deadline, self.process.log.read_text()[-3000:]
                time.sleep(0.05)  # polling another process's journal


def count(journal: Journal, sql: str, *params: object) -> int:
    """The single number a `SELECT COUNT(*) AS n ...` gives."""
    return int(journal.query(sql, params)[0]["n"])


@pytest.fixture
def served(
    tmp_path: Path, journal: str, smtp_capture: Callable[..., CaptureServer]
) -> Iterator[Callable[[], Served]]:
    """Start `serve` on the test's journal backend (SQLite, PostgreSQL) with a capture relay."""
    started: list[Served] = []

    def start() -> Served:
        one = Served(tmp_path, journal, smtp_capture())
        started.append(one)
        one.process.start()
        return one

    yield start
    for one in started:
        one.process.stop()
