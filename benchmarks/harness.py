"""The benchmark's moving parts: a timing capture relay, referral mail, the daemon process.

See `benchmarks/pipeline.py` for the benchmark itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/pipeline.py` works too
    sys.path.insert(0, str(ROOT))


from aiosmtplib import protocol  # noqa: E402

from router.inbox.admission import Admission  # noqa: E402
from router.inbox.smtp_session import ListenerOptions, ListenerSMTP  # noqa: E402
from router.send import smtp_data  # noqa: E402
from tests.formfactory import complete_referral, fillable_pdf, labelled  # noqa: E402
from tests.mailfactory import build_email  # noqa: E402
from tests.servers.smtp import CaptureServer, free_port  # noqa: E402

# The bare work's SMTP client prepares DATA and quotes addresses as the router's relay does
# (`router/send/smtp_data.py`), so the bare work sends as the router sends.
smtp_data.install()

MET = "preventreferrals@met.pnn.police.uk"
INBOX_ADDRESS = "prevent@lewisham.gov.uk"
_BENCH_ID = re.compile(rb"<bench-[\w.-]+@school\.example>")
_POSTCODES = ("SE13 6LH", "SE4 1AA", "SE6 2BB", "SE23 3CC")
_CAPTURE_MAX_BYTES = 64 * 1024 * 1024


# --- the relay side ---------------------------------------------------------------------


class TimedCapture(CaptureServer):
    """A capture server that keeps only arrival times (and one sample of each kind of mail).

    Keeping every message, as the test server does, would hold gigabytes for a large backlog.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[bytes, float] = {}  # original Message-ID -> forward arrival
        self.acks = 0
        self.samples: dict[str, tuple[str, list[str], bytes]] = {}
        self._arrival = threading.Condition()
        self._missing: set[bytes] = set()  # what `wait_forwards` still waits for
        self._admission = Admission((), max_sessions=1000, max_per_client=1000)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        data = bytes(envelope.original_content)
        kind = "forward" if MET in envelope.rcpt_tos else "other"
        head = data[: data.find(b"\r\n\r\n")]
        match = _BENCH_ID.search(head) if kind == "forward" else None
        with self._arrival:
            if match is not None:
                self.arrived.setdefault(match.group(0), now)
                self._missing.discard(match.group(0))
            else:
                self.acks += 1
            self.samples.setdefault(kind, (envelope.mail_from, list(envelope.rcpt_tos), data))
            if not self._missing:
                self._arrival.notify_all()
        return "250 OK"

    def _new_session(self) -> Any:
        """The router's own listener session (DATA read in pieces, a plain address parsed
        directly) instead of the test server's: the capture stands in for the council's mail
        server, which spends next to no CPU on a mail, while aiosmtpd's line-by-line DATA
        and address parser cost it several ms a referral on the machine under test."""
        return ListenerSMTP(
            self,
            options=ListenerOptions(max_message_bytes=_CAPTURE_MAX_BYTES),
            admission=self._admission,
            hostname="localhost",
        )

    def wait_forwards(self, ids: Sequence[bytes], timeout: float) -> dict[bytes, float]:
        """Block until every id's forward arrived; returns id -> arrival time. (Each
        arrival costs the capture one set operation, not a look at every id: a look at all
        10,000 ids per mail made the benchmark's own CPU grow as a backlog drained.)"""
        with self._arrival:
            self._missing = {i for i in ids if i not in self.arrived}
            done = self._arrival.wait_for(lambda: not self._missing, timeout)
            if not done:
                missing = len(self._missing)
                self._missing = set()
                raise TimeoutError(f"{missing} of {len(ids)} forwards missing after {timeout}s")
            return {i: self.arrived[i] for i in ids}


# --- the mail -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Referral:
    """One benchmark email and the Message-ID its forward will reference."""

    message_id: bytes
    sender: str
    raw: bytes


def make_referrals(count: int, tag: str, variants: list[bytes]) -> list[Referral]:
    """`count` referrals from distinct senders (no acknowledgment cap), cycling PDF variants."""
    referrals = []
    for i in range(count):
        message_id = f"<bench-{tag}-{i}@school.example>"
        sender = f"teacher{i}.{tag}@school{i % 7}.example"  # distinct across runs too
        raw = build_email(
            sender=sender,
            message_id=message_id,
            attachments=[("referral.pdf", variants[i % len(variants)], "application/pdf")],
        )
        referrals.append(Referral(message_id.encode(), sender, raw))
    return referrals


def pdf_variants() -> list[bytes]:
    """A few filled-in forms that differ (names, postcodes), all complete Lewisham referrals."""
    return [
        fillable_pdf(
            labelled(complete_referral(person_name=f"Test Person {i}", person_postcode=pc))
        )
        for i, pc in enumerate(_POSTCODES)
    ]


async def send_referral(port: int, referral: Referral) -> float:
    """Hand one referral to the daemon's SMTP inbox as another mail server would (a new
    connection, EHLO, MAIL, RCPT, DATA, QUIT); returns the time of its 250.

    A lean client on plain streams: it stands in for mail servers on other machines, so it
    should take as little as it can of the cores it shares with the daemon under test.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _reply(reader, b"220")
        for command, expected in (
            (b"EHLO bench.example\r\n", b"250"),
            (b"MAIL FROM:<" + referral.sender.encode() + b">\r\n", b"250"),
            (b"RCPT TO:<" + INBOX_ADDRESS.encode() + b">\r\n", b"250"),
            (b"DATA\r\n", b"354"),
        ):
            writer.write(command)
            await _reply(reader, expected)
        # DATA as aiosmtplib (and so the router's relay) prepares it: CRLF line ends, leading
        # dots doubled, the final dot line.
        data = protocol.PERIOD_REGEX.sub(b"..", smtp_data.normalized(referral.raw))
        writer.write(data + b".\r\n")
        await _reply(reader, b"250")
        accepted = time.perf_counter()
        writer.write(b"QUIT\r\n")
        await _reply(reader, b"221")
        return accepted
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _reply(reader: asyncio.StreamReader, expected: bytes) -> None:
    """Read one (possibly multi-line) SMTP reply; fail unless its code is `expected`."""
    while True:
        line = await reader.readline()
        if not line.startswith(expected):
            raise RuntimeError(f"SMTP reply {line[:60]!r}, expected {expected.decode()}")
        if line[3:4] != b"-":
            return


# --- the daemon ---------------------------------------------------------------------------


@dataclass
class RouterProcess:
    """`python -m router serve` with settings in its environment, logs to a file."""

    state_dir: Path
    relay_port: int
    log_path: Path
    inbox_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
        env.update(
            ROUTER_STATE_DIR=str(self.state_dir),
            ROUTER_RULES_DIR=str(ROOT / "rules"),
            ROUTER_INBOX=f"smtp://127.0.0.1:{self.inbox_port}",
            ROUTER_RELAY=f"smtp://127.0.0.1:{self.relay_port}",
            ROUTER_HTTP=f"127.0.0.1:{self.http_port}",
            ROUTER_FROM_ADDRESS="referrals@router.example",
            ROUTER_REVIEW_ADDRESS="review@router.example",
            ROUTER_LOG_FORMAT="json",
        )
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "router", "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def wait_ready(self, timeout: float = 60) -> float:
        """Poll /readyz until 200; returns seconds since start."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited; see {self.log_path}")
            try:
                if self.get("/readyz")[0] == 200:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        raise TimeoutError("daemon not ready")

    def peak_rss(self) -> tuple[int, int]:
        """Peak resident memory (VmHWM, bytes) of the daemon and of its largest descendant.

        Not getrusage(RUSAGE_CHILDREN): Linux counts in a child's ru_maxrss the pages it
        shared with this (large) process between fork and exec, so it reports this
        benchmark's own size rather than the daemon's.
        """
        assert self.process is not None
        own = _vm_hwm(self.process.pid)
        return own, max((_vm_hwm(pid) for pid in _descendants(self.process.pid)), default=0)

    def stop(self) -> float:
        """SIGTERM and wait; returns how long the daemon took to exit."""
        assert self.process is not None
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(30)
        if status != 0:
            raise RuntimeError(f"daemon exited with {status}; see {self.log_path}")
        return time.perf_counter() - started

    def kill(self) -> None:
        """SIGKILL the daemon and its worker (a failed run), and print the end of its log."""
        assert self.process is not None
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)
        tail = self.log_path.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(["--- end of the daemon's log:", *tail]), file=sys.stderr)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the daemon and its live descendants."""
        assert self.process is not None
        return sum(_cpu(pid) for pid in [self.process.pid, *_descendants(self.process.pid)])

    def worker_pid(self) -> int | None:
        """The analysis worker: the process forked by the daemon's forkserver."""
        assert self.process is not None
        for child in _children(self.process.pid):
            for grandchild in _children(child):
                return grandchild
        return None

    def decisions(self) -> float:
        """Sum of router_decisions_total from /metrics."""
        _, body = self.get("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("router_decisions_total{")
        )


class HealthProbe:
    """Polls a daemon's `/healthz` from a thread every 20 ms while in use; keeps latencies."""

    def __init__(self, daemon: RouterProcess) -> None:
        self._daemon = daemon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.latencies: list[float] = []

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            try:
                self._daemon.get("/healthz")
            except OSError:
                continue
            self.latencies.append(time.perf_counter() - started)

    def p99(self) -> float:
        return p99(self.latencies)


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank); 0 for no values."""
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    return [found for child in _children(pid) for found in (child, *_descendants(child))]
