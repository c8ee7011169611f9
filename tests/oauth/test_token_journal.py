"""A token renewed while the journal is locked, in a real `serve`: the token's health is
recorded off the event loop and best effort, so the forward goes and the loop keeps turning."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.serve import ServeProcess, referral, send_until_stored, wait_for_forwards
from tests.servers.smtp import CaptureServer, TlsAuthority, free_port
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer
from tests.service.test_lifecycle import listen_port

SENDER = "teacher@school.example"
LOCK_SECONDS = 7.0  # longer than the journal's 5 s busy timeout: a write waiting on it fails


@pytest.fixture
def oauth_serve(
    tmp_path: Path, rules_dir: Path, tls_ca: TlsAuthority, token_server: TokenServer
) -> Iterator[tuple[ServeProcess, CaptureServer]]:
    """`serve` with a relay that takes only XOAUTH2, tokens from the loopback endpoint."""
    capture = CaptureServer(tls="starttls", server_context=tls_ca.server_context).start()
    capture.require_xoauth2("testuser", token_server.is_valid)
    shutil.copytree(rules_dir, tmp_path / "rules", dirs_exist_ok=True)
    port, http_port = listen_port(), free_port()
    router = ServeProcess(
        tmp_path,
        {
            "ROUTER_INBOX": f"smtp://127.0.0.1:{port}",
            "ROUTER_RELAY": capture.url,
            "ROUTER_RELAY_CA_FILE": str(tls_ca.ca_file),
            "ROUTER_RELAY_AUTH": "oauth2",
            "ROUTER_RELAY_USER": "testuser",
            "ROUTER_OAUTH_PROVIDER": "generic",
            "ROUTER_OAUTH_TOKEN_URL": token_server.token_url,
            "ROUTER_OAUTH_CLIENT_ID": CLIENT_ID,
            "ROUTER_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "ROUTER_HTTP": f"127.0.0.1:{http_port}",
            "ROUTER_STATE_DIR": str(tmp_path / "state"),
            "ROUTER_RULES_DIR": str(tmp_path / "rules"),
            "ROUTER_RETRY_BASE_SECONDS": "0.5",
            "ROUTER_RETRY_MAX_SECONDS": "2",
        },
        port,
        http_port,
    )
    try:
        yield router, capture
    finally:
        router.stop()
        capture.stop()


def _greeting_seconds(port: int) -> float:
    """From connected to the listener's 220: how long the daemon's event loop took."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        started = time.monotonic()
        assert sock.makefile("rb").readline().startswith(b"220")
        return time.monotonic() - started


@pytest.mark.slow
def test_a_token_renewed_while_the_journal_is_locked(
    oauth_serve: tuple[ServeProcess, CaptureServer], token_server: TokenServer
) -> None:
    """Another connection holds the journal's write lock while the relay's token is renewed:
    the forward is sent and recorded once the lock goes, nothing is quarantined, and the
    event loop answers SMTP greetings within a second throughout."""
    router, capture = oauth_serve
    # Renewed after 4 s (80 %); the JWT's whole-second `exp` still holds until then.
    token_server.lifetime = 5
    router.start()
    deadline = time.monotonic() + 60
    send_until_stored(router.port, referral(0), sender=SENDER, deadline=deadline)
    assert wait_for_forwards(capture, range(1), timeout=30)
    while time.time() < token_server.issued[-1]["exp"] + 0.2:
        time.sleep(0.1)  # until the last token is due for renewal
    capture.disconnect_all()  # the forward opens a new connection, so it asks for a token
    capture.stall(1.0, at="connect")  # its greeting comes once the journal is locked
    connections = capture.connections
    send_until_stored(router.port, referral(1), sender=SENDER, deadline=deadline)
    while capture.connections == connections:
        assert time.monotonic() < deadline, "the forward never connected"
        time.sleep(0.02)  # polling the relay's connection count

    lock = sqlite3.connect(Path(router.env["ROUTER_STATE_DIR"]) / "journal.sqlite3")
    lock.execute("BEGIN IMMEDIATE")
    fetches = len(token_server.issued)
    greetings: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            greetings.append(_greeting_seconds(router.port))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(LOCK_SECONDS)  # the lock is the fault: held as long as a `status` might
    stop.set()
    sampler.join(30)
    lock.execute("ROLLBACK")
    lock.close()

    counts = wait_for_forwards(capture, range(2), timeout=30)
    assert counts == {"<referral-0@school.example>": 1, "<referral-1@school.example>": 1}
    assert len(token_server.issued) > fetches  # the token was renewed while locked
    assert router.metric("router_quarantine_size") == 0
    assert greetings and max(greetings) < 1.0, greetings
    # The heartbeat that failed meanwhile carries on (its thread once died of the lock).
    assert "Exception in thread" not in router.log_text()
