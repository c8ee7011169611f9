"""Abuse of the embedded listener, against a real `serve`: idle connections by the thousand,
100,000 recipients, a message of empty lines, a huge EHLO. The daemon stays responsive and
small, and referrals still get through."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.hardening.serve import (
    Sampler,
    ServeProcess,
    referral,
    send_until_stored,
    wait_for_forwards,
)
from tests.servers.smtp import CaptureServer

SENDER = "teacher@school.example"
MAX_RSS = 300 * 1024 * 1024


@contextlib.contextmanager
def _descriptors(count: int) -> Iterator[None]:
    """Let this test process hold `count` more sockets (the daemon keeps its own limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, count + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _session(source: str, port: int) -> tuple[socket.socket, socket.SocketIO]:
    """A connected client past the greeting and EHLO; returns the socket and a line reader."""
    sock = _connect_from(source, port)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")
    sock.sendall(b"EHLO client.example\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    return sock, reader  # type: ignore[return-value]


@pytest.mark.slow
def test_thousands_of_idle_connections(serve: tuple[ServeProcess, CaptureServer]) -> None:
    """2,000 idle connections from one address (the daemon allowed 1,024 descriptors): the
    daemon holds few of them, /healthz and the SMTP greeting come within a second, and a
    referral from another address is forwarded."""
    router, capture = serve
    router.start()
    router.limit(resource.RLIMIT_NOFILE, 1024)
    idle: list[socket.socket] = []
    with _descriptors(2000), Sampler(router) as sampler:
        try:
            for _ in range(2000):
                with contextlib.suppress(ConnectionError):
                    idle.append(_connect_from("127.0.0.2", router.port))
            assert router.open_descriptors() < 200
            deadline = time.monotonic() + 60
            send_until_stored(router.port, referral(1), sender=SENDER, deadline=deadline)
            counts = wait_for_forwards(capture, range(1, 2), timeout=30)
            assert counts == {"<referral-1@school.example>": 1}
            assert router.open_descriptors() < 200
        finally:
            for sock in idle:
                sock.close()
    assert sampler.slowest < 1.0 and not sampler.failures
    assert sampler.slowest_greeting < 1.0
    assert router.metric("router_smtp_connections_refused_total", reason="too_many_from_client")


def _many_recipients(port: int) -> bytes:
    """RCPT TO 100,000 times, pipelined; returns what the server answered until it closed."""
    sock, reader = _session("127.0.0.3", port)
    replies = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                replies.extend(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    commands = b"MAIL FROM:<a@school.example>\r\n" + b"".join(
        b"RCPT TO:<pupil%d@school.example>\r\n" % n for n in range(100_000)
    )
    with contextlib.suppress(OSError):
        sock.sendall(commands)
        sock.shutdown(socket.SHUT_WR)
    thread.join(60)
    reader.close()
    sock.close()
    return bytes(replies)


def _empty_lines_message(port: int) -> bytes:
    """A 20 MB message of empty lines; returns the reply to the end of DATA."""
    sock, reader = _session("127.0.0.4", port)
    sock.sendall(b"MAIL FROM:<a@school.example>\r\nRCPT TO:<prevent@lewisham.gov.uk>\r\nDATA\r\n")
    replies = [reader.readline() for _ in range(3)]
    assert replies[-1].startswith(b"354"), replies
    chunk = b"\r\n" * 512 * 1024
    for _ in range(20):
        sock.sendall(chunk)
    sock.sendall(b".\r\n")
    answer = reader.readline()
    reader.close()
    sock.close()
    return answer


def _huge_ehlo(port: int) -> bytes:
    """EHLO with a 24 MB name; returns the reply, or b"closed" when the server cut the
    connection before the line ended."""
    sock = _connect_from("127.0.0.5", port)
    reader = sock.makefile("rb")
    reader.readline()
    try:
        sock.sendall(b"EHLO " + b"a" * (24 * 1024 * 1024) + b"\r\n")
        answer = reader.readline()
    except OSError:
        answer = b"closed"
    reader.close()
    sock.close()
    return answer


@pytest.mark.slow
def test_hostile_sizes_keep_the_daemon_small_and_responsive(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """100,000 RCPT TO, a 20 MB message of empty lines and ten 24 MB EHLO lines at once:
    recipients are capped and the client cut off, the EHLOs refused, the message stored;
    /healthz and the SMTP greeting come within a second throughout, and the daemon stays
    under 300 MB."""
    router, _capture = serve
    router.start()
    results: dict[str, object] = {}

    def run(name: str, call) -> None:  # type: ignore[no-untyped-def]
        results[name] = call(router.port)

    jobs = [threading.Thread(target=run, args=("rcpt", _many_recipients))]
    jobs += [threading.Thread(target=run, args=(f"ehlo{n}", _huge_ehlo)) for n in range(10)]
    with Sampler(router) as sampler:
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(100)
        results["data"] = _empty_lines_message(router.port)
    replies = bytes(results["rcpt"]).splitlines()  # type: ignore[arg-type]
    # The cut-off closes the connection while the flood still comes in, which resets it:
    # replies not yet read by then are lost on the client's side, so the cap (100, shown
    # exactly in tests/inbox/test_smtp_limits.py) is seen here as at most 100, and the
    # cut-off, after 1,000 refusals, in the daemon's log.
    assert sum(reply.startswith(b"250 2.1.5") for reply in replies) <= 100
    assert len(replies) < 10_000  # cut off long before the end
    assert '"refused": 1001' in router.wait_logged("smtp_too_many_recipients")
    ehlo_answers = {bytes(results[f"ehlo{n}"])[:3] for n in range(10)}  # type: ignore[arg-type]
    assert ehlo_answers <= {b"500", b"clo"}
    assert bytes(results["data"]).startswith(b"250")  # type: ignore[arg-type]
    assert sampler.slowest < 1.0 and not sampler.failures
    assert sampler.slowest_greeting < 1.0
    assert sampler.peak_rss < MAX_RSS, sampler.peak_rss
