"""`referral-router serve` as a real process for fault tests: its health endpoint, metrics,
memory and descriptors read from outside, its resource limits changed while it runs."""

from __future__ import annotations

import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import Captured, CaptureServer, free_port
from tests.service.test_lifecycle import MET, RouterProcess, listen_port

FORM = fillable_pdf(labelled(complete_referral()))


def referral(number: int, *, sender: str = "teacher@school.example") -> bytes:
    """A complete referral with a Message-ID that names its number."""
    return build_email(
        sender=sender,
        attachments=[("referral.pdf", FORM, "application/pdf")],
        message_id=f"<referral-{number}@school.example>",
    )


class ServeProcess(RouterProcess):
    """A daemon whose output goes through a pipe (so a file-size limit on the daemon never
    touches its log), with its HTTP endpoint on `http_port`."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int, http_port: int) -> None:
        super().__init__(cwd, env, port)
        self.http_port = http_port
        self._copier: threading.Thread | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve"],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._copier = threading.Thread(target=self._copy_output, daemon=True)
        self._copier.start()
        deadline = time.monotonic() + 30
        for port in (self.port, self.http_port):
            while True:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "daemon did not start listening"
                    time.sleep(0.05)  # polling a port that is not open yet

    def stop(self) -> None:
        super().stop()
        if self._copier is not None:
            self._copier.join(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log.open("ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes, float]:
        """GET `path` from the endpoint: status, body, seconds taken."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        return status, body, time.monotonic() - started

    def health(self) -> tuple[int, dict[str, object], float]:
        """/healthz: status, the JSON report, seconds taken."""
        status, body, seconds = self.get("/healthz")
        return status, json.loads(body), seconds

    def ready(self) -> tuple[int, dict[str, object], float]:
        """/readyz: status, the JSON report, seconds taken."""
        status, body, seconds = self.get("/readyz")
        return status, json.loads(body), seconds

    def metric(self, name: str, **labels: str) -> float:
        """One sample from /metrics (0 when absent)."""
        _, body, _ = self.get("/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def rss_bytes(self) -> int:
        """The daemon process's resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def open_descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def limit(self, which: int, soft: int) -> None:
        """Change one resource limit of the running daemon (soft value; hard kept)."""
        _, hard = resource.prlimit(self.pid, which)
        resource.prlimit(self.pid, which, (soft, hard))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_logged(self, *events: str, timeout: float = 30) -> str:
        """The log once every one of `events` is in it (an event is logged just after the
        journal commit a test may have seen)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if all(f'"event": "{event}"' in text for event in events):
                return text
            assert time.monotonic() < deadline, f"{events} not all logged"
            time.sleep(0.05)  # polling a file another process writes


class Sampler:
    """Samples, in a thread until stopped: /healthz latency, the SMTP greeting's latency
    (served by the daemon's main event loop, which /healthz's own thread is not), and the
    daemon's memory."""

    def __init__(self, router: ServeProcess) -> None:
        self.router = router
        self.slowest = 0.0
        self.slowest_greeting = 0.0
        self.failures: list[int] = []
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.router.rss_bytes())
            try:
                status, _, seconds = self.router.get("/healthz", timeout=10)
            except OSError:
                status, seconds = 0, 10.0
            self.slowest = max(self.slowest, seconds)
            if status != 200:
                self.failures.append(status)
            self.slowest_greeting = max(self.slowest_greeting, self._greeting_seconds())
            self._stop.wait(0.1)

    def _greeting_seconds(self) -> float:
        """From connected to greeted: the main loop's delay (the kernel's accept queue, full
        in a flood of connections, is not the daemon's to answer for)."""
        try:
            with socket.socket() as sock:
                sock.settimeout(10)
                sock.bind(("127.0.0.9", 0))  # an address of its own: never over a client limit
                sock.connect(("127.0.0.1", self.router.port))
                started = time.monotonic()
                if not sock.makefile("rb").readline().startswith(b"220"):
                    return 10.0
        except OSError:
            return 10.0
        return time.monotonic() - started


def send_until_stored(port: int, raw: bytes, *, sender: str, deadline: float) -> str:
    """Send like a mail server: a 4xx or a dropped connection means "try again shortly";
    a 5xx fails the test. Returns the 250 reply text."""
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo()
                client.mail(sender)
                client.rcpt("prevent@lewisham.gov.uk")
                code, reply = client.data(raw)
            if code == 250:
                return reply.decode()
            assert code < 500, f"permanent failure {code} {reply!r}"
        except smtplib.SMTPResponseException as exc:
            assert exc.smtp_code < 500, f"permanent failure {exc.smtp_code} {exc.smtp_error!r}"
        except (OSError, smtplib.SMTPException):
            pass  # connection trouble: a mail server retries
        assert time.monotonic() < deadline, "message never stored"
        time.sleep(0.2)  # a mail server's retry interval, shortened


def forwards(messages: list[Captured]) -> dict[str, int]:
    """How many forwards to the police each original referral (by Message-ID) got."""
    counts: dict[str, int] = {}
    for captured in messages:
        if MET in captured.rcpt_tos:
            for ref in str(captured.message["References"] or "").split():
                if ref.startswith("<referral-"):
                    counts[ref] = counts.get(ref, 0) + 1
    return counts


def wait_for_forwards(capture: CaptureServer, numbers: range, timeout: float) -> dict[str, int]:
    """Wait until every referral in `numbers` was forwarded; return the counts."""
    wanted = {f"<referral-{n}@school.example>" for n in numbers}
    deadline = time.monotonic() + timeout
    while True:
        messages = capture.messages
        counts = forwards(messages)
        if wanted <= set(counts) or time.monotonic() > deadline:
            return counts
        capture.wait_beyond(len(messages), timeout=max(0.1, deadline - time.monotonic()))


@pytest.fixture
def serve(tmp_path: Path, rules_dir: Path) -> Iterator[tuple[ServeProcess, CaptureServer]]:
    """A started `serve` (embedded listener, HTTP endpoint) relaying to a capture server."""
    capture = CaptureServer().start()
    shutil.copytree(rules_dir, tmp_path / "rules", dirs_exist_ok=True)
    port = listen_port()
    router = ServeProcess(
        tmp_path,
        {
            "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
            "ROUTER_RELAY": capture.url,
            "ROUTER_HTTP": f"127.0.0.1:{free_port()}",
            "ROUTER_STATE_DIR": str(tmp_path / "state"),
            "ROUTER_RULES_DIR": str(tmp_path / "rules"),
            "ROUTER_RETRY_BASE_SECONDS": "0.5",
            "ROUTER_RETRY_MAX_SECONDS": "2",
            "ROUTER_LOG_LEVEL": "debug",
        },
        port,
        0,
    )
    router.http_port = int(router.env["ROUTER_HTTP"].rsplit(":", 1)[1])
    try:
        yield router, capture
    finally:
        router.stop()
        capture.stop()
